//! Basic authentication for every endpoint (`basic_auth_users` of `--web.config.file`), with a
//! bounded cache of verified credentials so that a scrape does not pay bcrypt each time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How many verified (user, hash, password) triples are remembered. A few scrapers and probes
/// use one each; the oldest is forgotten first.
const CACHE_ENTRIES: usize = 64;

/// The bcrypt hash of a password nobody knows, checked for unknown users so that the time to
/// refuse does not tell which user names exist (the toolkit does the same). Cost 10, as
/// `htpasswd -B` makes by default.
const UNKNOWN_USER_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// What a request's credentials amount to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No users configured, or the right password for a configured user.
    Allowed,
    /// No `Authorization: Basic` header, or one that does not decode.
    Missing,
    /// An unknown user or a wrong password.
    Denied,
    /// Credentials not verified before, while bcrypt stayed busy with others for
    /// [`BCRYPT_WAIT`]: the client should retry (503), and the worker is free again.
    Busy,
}

/// How long a request waits for its turn at bcrypt. A flood of wrong guesses keeps bcrypt busy;
/// without a bound every HTTP worker would queue behind it, and credentials verified before
/// (a scraper's) would wait too.
pub const BCRYPT_WAIT: Duration = Duration::from_millis(250);

/// Checks basic credentials against bcrypt hashes, remembering successes.
///
/// Only verified credentials are cached, and only as a SHA-256 digest of user, hash and
/// password together: a wrong password is never remembered as good, the cache never holds a
/// password, and a changed hash (a rotated password) misses the cache.
pub struct BasicAuth {
    verified: Mutex<VecDeque<[u8; 32]>>,
    /// bcrypt runs one at a time: it is slow on purpose, and a flood of wrong guesses must
    /// not occupy every core (the toolkit serialises it the same way).
    bcrypt: Mutex<()>,
}

impl Default for BasicAuth {
    fn default() -> Self {
        BasicAuth {
            verified: Mutex::new(VecDeque::with_capacity(CACHE_ENTRIES)),
            bcrypt: Mutex::new(()),
        }
    }
}

impl BasicAuth {
    /// Whether the `Authorization` headers carry a configured user's password. Every header
    /// with the Basic scheme is tried (a request to `/api/v1/monitoring/metrics` also carries
    /// its Bearer token in another `Authorization` header). Credentials verified before are
    /// answered from the cache, never waiting for bcrypt.
    pub fn check<'a>(
        &self,
        users: &BTreeMap<String, String>,
        authorizations: impl IntoIterator<Item = &'a str>,
    ) -> Verdict {
        if users.is_empty() {
            return Verdict::Allowed;
        }
        let mut verdict = Verdict::Missing;
        for header in authorizations {
            let Some((user, password)) = decode(header) else {
                continue;
            };
            match self.verify(users, &user, &password) {
                Some(true) => return Verdict::Allowed,
                Some(false) => verdict = Verdict::Denied,
                None => verdict = Verdict::Busy,
            }
        }
        verdict
    }

    /// `None` when bcrypt stayed busy for [`BCRYPT_WAIT`].
    fn verify(
        &self,
        users: &BTreeMap<String, String>,
        user: &str,
        password: &[u8],
    ) -> Option<bool> {
        let (hash, known) = match users.get(user) {
            Some(hash) => (hash.as_str(), true),
            None => (UNKNOWN_USER_HASH, false),
        };
        let key = cache_key(user, hash, password);
        if known && self.cached(&key) {
            return Some(true);
        }
        let good = {
            let _one_at_a_time = self.bcrypt_turn()?;
            bcrypt::verify(password, hash).unwrap_or(false)
        };
        if good && known {
            let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            if verified.len() >= CACHE_ENTRIES {
                verified.pop_front();
            }
            verified.push_back(key);
        }
        Some(good && known)
    }

    /// The bcrypt lock, waiting at most [`BCRYPT_WAIT`] for it (in 2 ms steps: a condition
    /// variable would need a second lock for a wait this short and this rare).
    fn bcrypt_turn(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        let give_up = Instant::now() + BCRYPT_WAIT;
        loop {
            match self.bcrypt.try_lock() {
                Ok(guard) => return Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => return Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) if Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(TryLockError::WouldBlock) => return None,
            }
        }
    }

    /// Whether `key` is among the verified ones. Every entry is compared in full, so the time
    /// taken does not depend on where a guess differs.
    fn cached(&self, key: &[u8; 32]) -> bool {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        let mut found = 0u8;
        for entry in verified.iter() {
            let mut difference = 0u8;
            for (a, b) in entry.iter().zip(key) {
                difference |= std::hint::black_box(a ^ b);
            }
            found |= u8::from(difference == 0);
        }
        std::hint::black_box(found) == 1
    }

    #[cfg(test)]
    fn cached_entries(&self) -> usize {
        self.verified.lock().unwrap().len()
    }
}

/// The digest that stands for (user, hash, password) in the cache; lengths are included so
/// that no two triples run together into the same bytes.
fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut digest = Sha256::new();
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part);
    }
    digest.finalize().into()
}

/// `Basic base64(user:password)` into its parts (RFC 7617); the scheme is case-insensitive.
fn decode(header: &str) -> Option<(String, Vec<u8>)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(encoded.trim())?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Standard base64 with padding, as browsers, curl and Prometheus send it.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(byte: u8) -> Option<u32> {
        Some(match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) || bytes.len() > 16 * 1024 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let last = index == bytes.len() / 4 - 1;
        let padding = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut word = 0u32;
        for &byte in &chunk[..4 - padding] {
            word = (word << 6) | value(byte)?;
        }
        word <<= 6 * padding as u32;
        let produced = [(word >> 16) as u8, (word >> 8) as u8, word as u8];
        out.extend_from_slice(&produced[..3 - padding]);
    }
    Some(out)
}

/// `Basic base64(user:password)`, for the probes.
pub fn header(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::with_capacity(6 + input.len().div_ceil(3) * 4);
    out.push_str("Basic ");
    for chunk in input.as_bytes().chunks(3) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |word, (i, &b)| word | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((word >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> BTreeMap<String, String> {
        // Cost 4: the test is about the logic, not bcrypt's speed.
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        BTreeMap::from([("prometheus".to_owned(), hash)])
    }

    #[test]
    fn base64_round_trips() {
        for (user, password) in [
            ("a", ""),
            ("prometheus", "s3cret"),
            ("ü", "p:w:d"),
            ("ab", "c"),
        ] {
            let header = header(user, password);
            let (decoded_user, decoded_password) = decode(&header).unwrap();
            assert_eq!(decoded_user, user);
            assert_eq!(decoded_password, password.as_bytes());
        }
        assert_eq!(
            header("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        for bad in [
            "Basic",
            "Basic QQ",
            "Basic Q===",
            "Basic QQ==QQ==",
            "Basic ****",
            "Bearer QQ==",
        ] {
            assert!(decode(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_the_right_password_is_allowed_and_only_it_is_cached() {
        let auth = BasicAuth::default();
        let users = users();
        assert_eq!(auth.check(&users, []), Verdict::Missing);
        assert_eq!(auth.check(&users, ["Bearer x"]), Verdict::Missing);
        assert_eq!(
            auth.check(&users, [header("prometheus", "wrong").as_str()]),
            Verdict::Denied
        );
        assert_eq!(
            auth.check(&users, [header("nobody", "s3cret").as_str()]),
            Verdict::Denied
        );
        assert_eq!(auth.cached_entries(), 0);
        let good = header("prometheus", "s3cret");
        assert_eq!(
            auth.check(&users, ["Bearer token", good.as_str()]),
            Verdict::Allowed
        );
        assert_eq!(auth.cached_entries(), 1);
        // Cached now, and a wrong password still fails after a right one.
        assert_eq!(auth.check(&users, [good.as_str()]), Verdict::Allowed);
        assert_eq!(
            auth.check(&users, [header("prometheus", "s3cret ").as_str()]),
            Verdict::Denied
        );
        assert_eq!(auth.cached_entries(), 1);
        // A new hash for the user (password changed) does not reuse the old success.
        let rotated =
            BTreeMap::from([("prometheus".to_owned(), bcrypt::hash("other", 4).unwrap())]);
        assert_eq!(auth.check(&rotated, [good.as_str()]), Verdict::Denied);
        assert_eq!(auth.check(&BTreeMap::new(), []), Verdict::Allowed);
    }

    #[test]
    fn new_credentials_give_up_while_bcrypt_is_busy_but_cached_ones_never_wait() {
        let auth = BasicAuth::default();
        let users = users();
        let good = header("prometheus", "s3cret");
        assert_eq!(auth.check(&users, [good.as_str()]), Verdict::Allowed);
        let held = auth.bcrypt.lock().unwrap();
        let asked = Instant::now();
        assert_eq!(auth.check(&users, [good.as_str()]), Verdict::Allowed);
        assert!(asked.elapsed() < BCRYPT_WAIT);
        assert_eq!(
            auth.check(&users, [header("prometheus", "guess").as_str()]),
            Verdict::Busy
        );
        assert!(asked.elapsed() >= BCRYPT_WAIT);
        drop(held);
        assert_eq!(
            auth.check(&users, [header("prometheus", "guess").as_str()]),
            Verdict::Denied
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let auth = BasicAuth::default();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let users: BTreeMap<String, String> = (0..CACHE_ENTRIES + 10)
            .map(|i| (format!("user{i}"), hash.clone()))
            .collect();
        for i in 0..CACHE_ENTRIES + 10 {
            let header = header(&format!("user{i}"), "pw");
            assert_eq!(auth.check(&users, [header.as_str()]), Verdict::Allowed);
        }
        assert_eq!(auth.cached_entries(), CACHE_ENTRIES);
    }
}
