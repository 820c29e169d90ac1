use std::io::Result as IoResult;
use std::io::{Read, Write};

use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use std::mem;

pub struct SequentialReaderBuilder<R>
where
    R: Read + Send,
{
    inner: SequentialReaderBuilderInner<R>,
}

enum SequentialReaderBuilderInner<R>
where
    R: Read + Send,
{
    First(R),
    NotFirst(Receiver<R>),
}

pub struct SequentialReader<R>
where
    R: Read + Send,
{
    inner: SequentialReaderInner<R>,
    next: Sender<R>,
}

enum SequentialReaderInner<R>
where
    R: Read + Send,
{
    MyTurn(R),
    Waiting(Receiver<R>),
    Empty,
}

pub struct SequentialWriterBuilder<W>
where
    W: Write + Send,
{
    writer: Arc<Mutex<W>>,
    next_trigger: Option<Receiver<()>>,
}

pub struct SequentialWriter<W>
where
    W: Write + Send,
{
    trigger: Option<Receiver<()>>,
    writer: Arc<Mutex<W>>,
    on_finish: Sender<()>,
}

impl<R: Read + Send> SequentialReaderBuilder<R> {
    pub fn new(reader: R) -> SequentialReaderBuilder<R> {
        SequentialReaderBuilder {
            inner: SequentialReaderBuilderInner::First(reader),
        }
    }
}

impl<W: Write + Send> SequentialWriterBuilder<W> {
    pub fn new(writer: W) -> SequentialWriterBuilder<W> {
        SequentialWriterBuilder {
            writer: Arc::new(Mutex::new(writer)),
            next_trigger: None,
        }
    }
}

impl<R: Read + Send> SequentialReaderBuilder<R> {
    /// The next reader in turn.
    ///
    /// Patched (fluxbase-exporter): an inherent method that always gives a reader, where
    /// upstream's `Iterator::next` wrapped it in an `Option` its callers unwrapped.
    pub fn next_reader(&mut self) -> SequentialReader<R> {
        let (tx, rx) = channel();

        let inner = mem::replace(&mut self.inner, SequentialReaderBuilderInner::NotFirst(rx));

        match inner {
            SequentialReaderBuilderInner::First(reader) => SequentialReader {
                inner: SequentialReaderInner::MyTurn(reader),
                next: tx,
            },

            SequentialReaderBuilderInner::NotFirst(previous) => SequentialReader {
                inner: SequentialReaderInner::Waiting(previous),
                next: tx,
            },
        }
    }
}

impl<W: Write + Send> SequentialWriterBuilder<W> {
    /// The next writer in turn: it writes once every writer made before it is dropped.
    ///
    /// Patched (fluxbase-exporter): an inherent method that always gives a writer, where
    /// upstream's `Iterator::next` wrapped it in an `Option` its callers unwrapped.
    pub fn next_writer(&mut self) -> SequentialWriter<W> {
        let (tx, rx) = channel();
        let mut next_next_trigger = Some(rx);
        ::std::mem::swap(&mut next_next_trigger, &mut self.next_trigger);

        SequentialWriter {
            trigger: next_next_trigger,
            writer: self.writer.clone(),
            on_finish: tx,
        }
    }
}

impl<R: Read + Send> SequentialReader<R> {
    /// Patched (fluxbase-exporter): blocks until the previous reader is done with the stream,
    /// so that the caller knows the next read goes to the socket itself.
    pub fn wait_for_turn(&mut self) {
        if let SequentialReaderInner::Waiting(ref mut recv) = self.inner {
            // The previous reader sends on drop; a closed channel leaves `Waiting` for `read`
            // to report as it always has.
            if let Ok(reader) = recv.recv() {
                self.inner = SequentialReaderInner::MyTurn(reader);
            }
        }
    }
}

impl<R: Read + Send> Read for SequentialReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let mut reader = match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => return reader.read(buf),
            // Patched (fluxbase-exporter): a previous reader gone without handing the stream
            // on is an error of this read, not a panic (upstream unwrapped).
            SequentialReaderInner::Waiting(ref mut recv) => recv.recv().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the previous reader did not hand the stream on",
                )
            })?,
            SequentialReaderInner::Empty => unreachable!(),
        };

        let result = reader.read(buf);
        self.inner = SequentialReaderInner::MyTurn(reader);
        result
    }
}

impl<W: Write + Send> Write for SequentialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        // Patched (fluxbase-exporter): the previous writer's turn ends when it says so or
        // when it is gone (upstream unwrapped the latter), and a writer that panicked while
        // holding the lock does not make every later writer panic too: the buffered writer
        // stays usable (at worst the peer sees a broken answer, and the connection ends).
        if let Some(v) = self.trigger.as_mut() {
            v.recv().ok();
        }
        self.trigger = None;

        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        // Patched (fluxbase-exporter): as in `write`.
        if let Some(v) = self.trigger.as_mut() {
            v.recv().ok();
        }
        self.trigger = None;

        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

impl<R> Drop for SequentialReader<R>
where
    R: Read + Send,
{
    fn drop(&mut self) {
        let inner = mem::replace(&mut self.inner, SequentialReaderInner::Empty);

        match inner {
            SequentialReaderInner::MyTurn(reader) => {
                self.next.send(reader).ok();
            }
            SequentialReaderInner::Waiting(recv) => {
                // Patched (fluxbase-exporter): nothing to hand on when the previous reader
                // is gone without handing the stream over (upstream unwrapped).
                if let Ok(reader) = recv.recv() {
                    self.next.send(reader).ok();
                }
            }
            SequentialReaderInner::Empty => (),
        }
    }
}

impl<W> Drop for SequentialWriter<W>
where
    W: Write + Send,
{
    fn drop(&mut self) {
        self.on_finish.send(()).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::{SequentialReaderBuilder, SequentialWriterBuilder};
    use std::io::{Read, Write};
    use std::sync::{Arc, PoisonError};

    /// Patched (fluxbase-exporter): writers take turns without unwrapping, and a writer that
    /// panicked while holding the shared stream does not make the next writers panic.
    #[test]
    fn writers_write_in_turn_even_after_one_panicked_holding_the_stream() {
        let mut builder = SequentialWriterBuilder::new(Vec::new());
        let shared = Arc::clone(&builder.writer);
        let panicked = std::thread::spawn(move || {
            let _guard = shared.lock();
            panic!("poisons the lock on purpose");
        })
        .join();
        assert!(panicked.is_err());

        let mut first = builder.next_writer();
        let mut second = builder.next_writer();
        first.write_all(b"first ").unwrap();
        drop(first);
        second.write_all(b"second").unwrap();
        second.flush().unwrap();
        drop(second);
        let written = builder
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(written, b"first second");
    }

    /// Patched (fluxbase-exporter): a reader whose predecessor vanished without handing the
    /// stream on gets an error, not a panic.
    #[test]
    fn a_reader_whose_predecessor_is_gone_gets_an_error() {
        let mut builder = SequentialReaderBuilder::new(&b"bytes"[..]);
        let mut first = builder.next_reader();
        let mut second = builder.next_reader();
        // The first reader loses the stream before it is dropped: it hands nothing on, and
        // its end of the hand-over channel closes with it.
        first.inner = super::SequentialReaderInner::Empty;
        drop(first);
        let mut buf = [0; 5];
        assert!(second.read(&mut buf).is_err());
    }
}
