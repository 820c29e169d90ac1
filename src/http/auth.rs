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
/// result is branched on.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    accumulate_difference(a, b, |_| ()) == 0
}

/// The OR of the XOR of every pair of bytes, visiting all 32 in order whatever they hold;
/// `visit` sees each index (the tests count the visits; in the build it is empty and inlined
/// away). `black_box` keeps the optimiser from turning the loop into an early exit.
#[inline(always)]
fn accumulate_difference(a: &[u8; 32], b: &[u8; 32], mut visit: impl FnMut(usize)) -> u8 {
    let mut difference = 0u8;
    for index in 0..32 {
        visit(index);
        difference |= std::hint::black_box(a[index] ^ b[index]);
    }
    std::hint::black_box(difference)
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
    fn comparison_visits_every_byte_wherever_the_first_difference_is() {
        // The comparison's work must not depend on where the inputs first differ: count the
        // bytes it visits for equal inputs and for a first difference at every position.
        let base = [7u8; 32];
        let visits = |other: &[u8; 32]| {
            let mut seen = Vec::new();
            let difference = accumulate_difference(&base, other, |index| seen.push(index));
            (seen, difference)
        };
        let every: Vec<usize> = (0..32).collect();
        assert_eq!(visits(&base), (every.clone(), 0));
        for position in 0..32 {
            let mut other = base;
            other[position] ^= 0x80;
            let (seen, difference) = visits(&other);
            assert_eq!(seen, every, "first difference at {position}");
            assert_ne!(difference, 0);
        }
        assert_eq!(visits(&[0xff; 32]).0, every);
        assert!(constant_time_eq(&base, &base));
        assert!(!constant_time_eq(&base, &[0; 32]));
    }

    #[test]
    fn how_much_of_the_token_a_guess_matches_does_not_reach_the_comparison() {
        // What is compared are digests: a guess sharing a longer prefix with the token does
        // not share a longer prefix of digest. (Each guess's digest differs from the token's
        // within the first 4 bytes; the chance of a guess not doing so is 2^-32.)
        let secret = "correct-horse-battery";
        let digest = sha256(secret.as_bytes());
        for matched in 0..secret.len() {
            let guess = format!("{}#", &secret[..matched]);
            let guessed = sha256(guess.as_bytes());
            let first_difference = (0..32).find(|&i| guessed[i] != digest[i]).unwrap();
            assert!(first_difference < 4, "{guess}: {first_difference}");
        }
        // And a guess of any length is compared as 32 bytes.
        for length in [0, 1, 21, 1000, 100_000] {
            assert!(!token().matches("x".repeat(length).as_bytes()));
        }
    }
}
