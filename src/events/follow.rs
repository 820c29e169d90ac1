//! Following a log file the way `tail -F` does: across rotation by rename-and-create and by
//! copy-truncate, through a file that does not exist yet or is deleted and comes back. A line is
//! handed out only once its newline has arrived.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Lines longer than this are not kept in memory: the part read is dropped and the line is
/// reported as too long once its newline comes.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

const READ_CHUNK: usize = 64 * 1024;

/// What the follower hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Line(&'a [u8]),
    /// A line longer than [`MAX_LINE_BYTES`] (its content is not kept).
    TooLong,
}

/// Where the follower is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowState {
    /// The file does not exist (yet, or any more).
    Waiting,
    Following,
}

/// Follows one path.
pub struct Follower {
    path: PathBuf,
    file: Option<Open>,
    /// Until the first open, whether to start at the end (the default) or replay the file.
    start_at_end: bool,
    /// Bytes of a line whose newline has not arrived.
    partial: Vec<u8>,
    /// Inside a line already known to be too long: drop bytes until its newline.
    discarding: bool,
    chunk: Vec<u8>,
    /// [`ROTATION_GRACE`], shorter in tests.
    rotation_grace: Duration,
}

struct Open {
    file: File,
    /// Device and inode: a different pair at the path means the file was rotated or replaced.
    identity: (u64, u64),
    offset: u64,
    /// When the path was first found missing while this file was open.
    vanished: Option<Instant>,
}

/// How long a file that vanished from its path is still read. A rotation by rename leaves the
/// path empty until the writer creates the next file, and the writer goes on appending to the
/// renamed one meanwhile; five seconds is Fluent Bit's `Rotate_Wait` default.
const ROTATION_GRACE: Duration = Duration::from_secs(5);

impl Follower {
    /// A follower of `path`. With `from_start`, a file that exists now is read from its
    /// beginning; otherwise from its end. A file that appears later is always read from its
    /// beginning: all of it is new.
    pub fn new(path: PathBuf, from_start: bool) -> Self {
        Follower {
            path,
            file: None,
            start_at_end: !from_start,
            partial: Vec::new(),
            discarding: false,
            chunk: vec![0; READ_CHUNK],
            rotation_grace: ROTATION_GRACE,
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Reads everything new, handing each complete line to `on_piece`. Returns where the
    /// follower stands; an I/O error other than the file's absence is returned (the next poll
    /// tries again).
    pub fn poll(&mut self, on_piece: &mut dyn FnMut(Piece<'_>)) -> io::Result<FollowState> {
        if self.file.is_none() && !self.open()? {
            return Ok(FollowState::Waiting);
        }
        self.drain(on_piece)?;
        // At the end of what the open file holds: has the path moved on?
        let current = match fs::metadata(&self.path) {
            Ok(metadata) => Some(metadata),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        let Some(open) = &mut self.file else {
            return Ok(FollowState::Waiting);
        };
        match current {
            // Gone from its path: renamed away with nothing in its place yet, or deleted. It is
            // still read for a while (its writer may be appending to it); then what was written
            // is read, and the path is waited for.
            None => {
                let since = *open.vanished.get_or_insert_with(Instant::now);
                if since.elapsed() < self.rotation_grace {
                    return Ok(FollowState::Following);
                }
                // What arrived since the read above, before letting go.
                self.drain(on_piece)?;
                self.file = None;
                self.partial.clear();
                self.discarding = false;
                return Ok(FollowState::Waiting);
            }
            // Renamed away and replaced: the old file is read to its end; the new one from its
            // start.
            Some(metadata) if (metadata.dev(), metadata.ino()) != open.identity => {
                // Lines written between the read above and the rename are read first.
                self.drain(on_piece)?;
                self.file = None;
                self.partial.clear();
                self.discarding = false;
                if self.open()? {
                    self.drain(on_piece)?;
                }
            }
            // Truncated in place (copy-truncate): start again from the beginning.
            Some(metadata) if metadata.len() < open.offset => {
                open.file.seek(SeekFrom::Start(0))?;
                open.offset = 0;
                self.partial.clear();
                self.discarding = false;
                self.drain(on_piece)?;
            }
            Some(_) => open.vanished = None,
        }
        Ok(FollowState::Following)
    }

    /// Opens the path; `false` when it does not exist.
    fn open(&mut self) -> io::Result<bool> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                // It did not exist when first looked for: when it appears, all of it is new.
                self.start_at_end = false;
                return Ok(false);
            }
            Err(err) => return Err(err),
        };
        let metadata = file.metadata()?;
        let offset = if std::mem::take(&mut self.start_at_end) {
            file.seek(SeekFrom::End(0))?
        } else {
            0
        };
        self.file = Some(Open {
            file,
            identity: (metadata.dev(), metadata.ino()),
            offset,
            vanished: None,
        });
        Ok(true)
    }

    /// Reads to the current end of the open file.
    fn drain(&mut self, on_piece: &mut dyn FnMut(Piece<'_>)) -> io::Result<()> {
        let Some(open) = &mut self.file else {
            return Ok(());
        };
        loop {
            let read = match open.file.read(&mut self.chunk) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            open.offset += read as u64;
            split_lines(
                &self.chunk[..read],
                &mut self.partial,
                &mut self.discarding,
                on_piece,
            );
        }
    }
}

/// Hands out the complete lines of `bytes`, joining a line begun in an earlier read; keeps the
/// incomplete end in `partial`. Complete lines inside `bytes` are handed out without a copy.
pub fn split_lines(
    bytes: &[u8],
    partial: &mut Vec<u8>,
    discarding: &mut bool,
    on_piece: &mut dyn FnMut(Piece<'_>),
) {
    let mut rest = bytes;
    while let Some(newline) = memchr::memchr(b'\n', rest) {
        let (line, after) = (&rest[..newline], &rest[newline + 1..]);
        if *discarding {
            *discarding = false;
            on_piece(Piece::TooLong);
        } else if partial.is_empty() {
            if line.len() > MAX_LINE_BYTES {
                on_piece(Piece::TooLong);
            } else {
                on_piece(Piece::Line(line));
            }
        } else if partial.len() + line.len() > MAX_LINE_BYTES {
            partial.clear();
            on_piece(Piece::TooLong);
        } else {
            partial.extend_from_slice(line);
            on_piece(Piece::Line(partial));
            partial.clear();
        }
        rest = after;
    }
    if *discarding || rest.is_empty() {
        return;
    }
    if partial.len() + rest.len() > MAX_LINE_BYTES {
        partial.clear();
        *discarding = true;
    } else {
        partial.extend_from_slice(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(follower: &mut Follower) -> Vec<String> {
        let mut lines = Vec::new();
        follower
            .poll(&mut |piece| {
                lines.push(match piece {
                    Piece::Line(line) => String::from_utf8_lossy(line).into_owned(),
                    Piece::TooLong => "<too long>".to_owned(),
                })
            })
            .unwrap();
        lines
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fxe-follow-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn append(path: &PathBuf, text: &str) {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    #[test]
    fn starts_at_the_end_unless_asked_to_replay() {
        let dir = temp("end");
        let path = dir.join("log");
        append(&path, "old 1\nold 2\n");
        let mut tail = Follower::new(path.clone(), false);
        assert!(collect(&mut tail).is_empty());
        append(&path, "new 1\n");
        assert_eq!(collect(&mut tail), ["new 1"]);
        let mut replay = Follower::new(path.clone(), true);
        assert_eq!(collect(&mut replay), ["old 1", "old 2", "new 1"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_line_waits_for_its_newline() {
        let dir = temp("partial");
        let path = dir.join("log");
        append(&path, "");
        let mut tail = Follower::new(path.clone(), false);
        collect(&mut tail);
        append(&path, "{\"message\":\"HTT");
        assert!(collect(&mut tail).is_empty());
        append(&path, "P request\"}\nnext");
        assert_eq!(collect(&mut tail), ["{\"message\":\"HTTP request\"}"]);
        append(&path, "\n");
        assert_eq!(collect(&mut tail), ["next"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn survives_rename_and_create_rotation() {
        let dir = temp("rename");
        let path = dir.join("log");
        append(&path, "");
        let mut tail = Follower::new(path.clone(), false);
        collect(&mut tail);
        append(&path, "a\n");
        // Written to the old file just before the rename: still read.
        fs::rename(&path, dir.join("log.1")).unwrap();
        append(&dir.join("log.1"), "b\n");
        append(&path, "c\n");
        assert_eq!(collect(&mut tail), ["a", "b", "c"]);
        append(&path, "d\n");
        assert_eq!(collect(&mut tail), ["d"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn survives_copy_truncate() {
        let dir = temp("truncate");
        let path = dir.join("log");
        append(&path, "");
        let mut tail = Follower::new(path.clone(), false);
        collect(&mut tail);
        append(&path, "first line that is long\n");
        assert_eq!(collect(&mut tail), ["first line that is long"]);
        fs::copy(&path, dir.join("log.1")).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, "short\n");
        assert_eq!(collect(&mut tail), ["short"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_renamed_file_is_read_until_its_replacement_appears() {
        let dir = temp("rename-gap");
        let path = dir.join("log");
        append(&path, "");
        let mut tail = Follower::new(path.clone(), true);
        append(&path, "one\n");
        assert_eq!(collect(&mut tail), ["one"]);
        // Renamed, and polled before the writer creates the next file: the writer still
        // appends to the renamed one.
        fs::rename(&path, dir.join("log.1")).unwrap();
        assert_eq!(collect(&mut tail), Vec::<String>::new());
        append(&dir.join("log.1"), "two\n");
        assert_eq!(collect(&mut tail), ["two"]);
        append(&dir.join("log.1"), "three\n");
        append(&path, "four\n");
        assert_eq!(collect(&mut tail), ["three", "four"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn waits_for_a_missing_file_and_for_a_deleted_one_to_come_back() {
        let dir = temp("missing");
        let path = dir.join("log");
        let mut tail = Follower::new(path.clone(), false);
        tail.rotation_grace = Duration::ZERO;
        let state = |tail: &mut Follower| tail.poll(&mut |_| {}).unwrap();
        assert_eq!(state(&mut tail), FollowState::Waiting);
        append(&path, "born\n");
        assert_eq!(
            collect(&mut tail),
            ["born"],
            "a file that appears is new from its first byte"
        );
        fs::remove_file(&path).unwrap();
        assert_eq!(state(&mut tail), FollowState::Waiting);
        append(&path, "back\n");
        assert_eq!(collect(&mut tail), ["back"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn over_long_lines_are_reported_not_kept() {
        let mut partial = Vec::new();
        let mut discarding = false;
        let mut pieces = Vec::new();
        let mut record = |piece: Piece<'_>| pieces.push(matches!(piece, Piece::TooLong));
        let big = vec![b'x'; MAX_LINE_BYTES / 2 + 1];
        split_lines(&big, &mut partial, &mut discarding, &mut record);
        split_lines(&big, &mut partial, &mut discarding, &mut record);
        assert!(
            discarding && partial.is_empty(),
            "nothing kept past the limit"
        );
        split_lines(&big, &mut partial, &mut discarding, &mut record);
        split_lines(b"tail\nok\n", &mut partial, &mut discarding, &mut record);
        assert_eq!(pieces, [true, false]);
        assert!(partial.is_empty() && !discarding);
    }
}
