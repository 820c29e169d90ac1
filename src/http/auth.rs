//! Bearer-token authentication for the JSON metrics endpoint.

use std::fmt;

use sha2::{Digest, Sha256};

/// The configured token, kept only as its SHA-256 digest.
///
/// Comparing digests makes the comparison independent of where a guess first differs from the
/// token and of the token's length: both sides are always 32 bytes, and every byte is compared.
pub struct BearerToken {
    digest: [u8; 32],
}

impl BearerToken {
    /// `None` for an empty token (an empty token would authorise an empty header).
    pub fn new(token: &str) -> Option<Self> {
        (!token.is_empty()).then(|| BearerToken {
            digest: sha256(token.as_bytes()),
        })
    }

    /// Whether `presented` is the token, in time that does not depend on how much of it matched.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(&self.digest, &sha256(presented))
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares two digests, always all 32 bytes: differences are OR-ed together and only the
/// result is branched on. `black_box` keeps the optimiser from turning the loop into an early
/// exit.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(difference) == 0
}

/// What a request's `Authorization` header amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No token is configured: the endpoint is closed until one is.
    NotConfigured,
    /// No `Authorization: Bearer ...` header.
    Missing,
    /// A bearer token that is not the configured one.
    Invalid,
}

/// Checks an `Authorization` header value against the configured token.
pub fn check(token: Option<&BearerToken>, authorization: Option<&str>) -> Verdict {
    let Some(token) = token else {
        return Verdict::NotConfigured;
    };
    let Some(value) = authorization else {
        return Verdict::Missing;
    };
    // RFC 6750: the scheme is case-insensitive, followed by one or more spaces.
    let Some((scheme, credentials)) = value.trim().split_once(' ') else {
        return Verdict::Missing;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Verdict::Missing;
    }
    let credentials = credentials.trim_start();
    if credentials.is_empty() {
        return Verdict::Missing;
    }
    if token.matches(credentials.as_bytes()) {
        Verdict::Allowed
    } else {
        Verdict::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> BearerToken {
        BearerToken::new("correct-horse-battery").unwrap()
    }

    #[test]
    fn only_the_exact_token_is_allowed() {
        let token = token();
        assert_eq!(
            check(Some(&token), Some("Bearer correct-horse-battery")),
            Verdict::Allowed
        );
        assert_eq!(
            check(Some(&token), Some("bearer   correct-horse-battery")),
            Verdict::Allowed
        );
        for wrong in [
            "Bearer correct-horse",
            "Bearer correct-horse-battery-staple",
            "Bearer Correct-horse-battery",
            "Bearer x",
        ] {
            assert_eq!(
                check(Some(&token), Some(wrong)),
                Verdict::Invalid,
                "{wrong}"
            );
        }
        let long = format!("Bearer {}", "a".repeat(100_000));
        assert_eq!(check(Some(&token), Some(&long)), Verdict::Invalid);
    }

    #[test]
    fn missing_or_malformed_headers_are_missing() {
        let token = token();
        for header in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic abc"),
            Some("correct-horse-battery"),
        ] {
            assert_eq!(check(Some(&token), header), Verdict::Missing, "{header:?}");
        }
    }

    #[test]
    fn no_configured_token_closes_the_endpoint() {
        assert_eq!(check(None, Some("Bearer anything")), Verdict::NotConfigured);
        assert!(BearerToken::new("").is_none());
    }

    #[test]
    fn debug_output_hides_the_token() {
        assert_eq!(format!("{:?}", token()), "BearerToken(<redacted>)");
    }

    #[test]
    fn a_difference_in_any_bit_of_the_digests_is_a_mismatch() {
        // Every byte takes part in the verdict: a comparison that stopped short, or skipped a
        // byte, would call one of these equal.
        let base: [u8; 32] = std::array::from_fn(|index| index as u8 * 7);
        let same = base;
        assert!(constant_time_eq(&base, &same));
        for position in 0..32 {
            for bit in 0..8 {
                let mut other = base;
                other[position] ^= 1 << bit;
                assert!(
                    !constant_time_eq(&base, &other),
                    "byte {position}, bit {bit}"
                );
                assert!(
                    !constant_time_eq(&other, &base),
                    "byte {position}, bit {bit}"
                );
            }
        }
    }

    #[test]
    fn guesses_close_to_the_token_are_invalid() {
        // Every prefix of the token, the token with one more character, and the token with any
        // one character changed: none is let in, however much of the token it shares.
        let secret = "correct-horse-battery";
        let token = token();
        let mut guesses: Vec<String> = (0..secret.len())
            .map(|matched| secret[..matched].to_owned())
            .collect();
        guesses.push(format!("{secret}x"));
        guesses.push(format!("{secret}\0"));
        for position in 0..secret.len() {
            let mut changed = secret.as_bytes().to_vec();
            changed[position] ^= 0x01;
            guesses.push(String::from_utf8(changed).unwrap());
        }
        for guess in &guesses {
            assert!(!token.matches(guess.as_bytes()), "{guess:?}");
            if !guess.is_empty() {
                assert_eq!(
                    check(Some(&token), Some(&format!("Bearer {guess}"))),
                    Verdict::Invalid,
                    "{guess:?}"
                );
            }
        }
        assert!(token.matches(secret.as_bytes()));
    }

    #[test]
    fn guesses_of_any_length_are_invalid_and_bytes_beyond_utf8_are_compared() {
        let token = token();
        for length in [1, 20, 21, 22, 32, 33, 64, 1000, 100_000] {
            assert!(!token.matches("x".repeat(length).as_bytes()), "{length}");
        }
        assert!(!token.matches(&[0xff; 21]));
        // Two tokens that differ only past the 32nd byte are told apart (the digest covers
        // the whole token, not a prefix of fixed length).
        let long = "a".repeat(40);
        let longer_token = BearerToken::new(&long).unwrap();
        assert!(longer_token.matches(long.as_bytes()));
        assert!(!longer_token.matches(format!("{}b", &long[..39]).as_bytes()));
    }
}
