//! Fluxbase's label rules (`fluxbase.md` section 2), so that series the exporter derives carry
//! exactly the label values Fluxbase itself would have given them: the values themselves
//! (status class, path, SQL operation and table, rate-limit identifier) and the route rules
//! behind some of them (the limiter a 429 came from, a storage request's object operation and
//! bucket).

use std::borrow::Cow;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// The `status` label: the class of an HTTP status code. Fluxbase never uses the code itself.
pub fn status_class(code: i64) -> &'static str {
    match code {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500.. => "5xx",
        _ => "unknown",
    }
}

/// Paths longer than this (in bytes) become `long_path`.
const LONG_PATH_BYTES: usize = 200;

/// The `path` label: the raw request path with every segment that is wholly a UUID (any case)
/// or wholly digits replaced by `:id`, and any path over 200 bytes replaced by `long_path`.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    if path.len() > LONG_PATH_BYTES {
        return Cow::Borrowed("long_path");
    }
    if !path.split('/').any(is_id_segment) {
        return Cow::Borrowed(path);
    }
    let mut normalized = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            normalized.push('/');
        }
        normalized.push_str(if is_id_segment(segment) {
            ":id"
        } else {
            segment
        });
    }
    Cow::Owned(normalized)
}

/// [`normalize_path`] appended to `out`, without allocating when `out` has room.
pub fn normalize_path_into(path: &str, out: &mut String) {
    if path.len() > LONG_PATH_BYTES {
        out.push_str("long_path");
        return;
    }
    // Byte-wise: '/' is ASCII, so every cut is at a character boundary.
    let mut start = 0;
    for end in memchr::memchr_iter(b'/', path.as_bytes()).chain(std::iter::once(path.len())) {
        let segment = &path[start..end];
        out.push_str(if is_id_segment(segment) {
            ":id"
        } else {
            segment
        });
        if end < path.len() {
            out.push('/');
        }
        start = end + 1;
    }
}

fn is_id_segment(segment: &str) -> bool {
    (!segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit())) || is_uuid(segment)
}

/// `8-4-4-4-12` hexadecimal digits, either case.
fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The `operation` label of a SQL statement: its first keyword, as Fluxbase reads it
/// (`select`, `insert`, `update`, `delete`, else `other`; `WITH` queries are `other`).
pub fn sql_operation(sql: &str) -> &'static str {
    let sql = sql.trim_start().as_bytes();
    let starts_with = |keyword: &str| {
        sql.len() >= keyword.len() && sql[..keyword.len()].eq_ignore_ascii_case(keyword.as_bytes())
    };
    if starts_with("SELECT") {
        "select"
    } else if starts_with("INSERT") {
        "insert"
    } else if starts_with("UPDATE") {
        "update"
    } else if starts_with("DELETE") {
        "delete"
    } else {
        "other"
    }
}

/// The `table` label of a SQL statement, as Fluxbase extracts it: the first name after `FROM`
/// (select, delete), `INTO` (insert) or `UPDATE` (update), lower-cased; `unknown` otherwise.
/// The name is a run of word characters, so `schema.table` yields the schema, as in Fluxbase.
pub fn sql_table(sql: &str) -> String {
    let keyword = match sql_operation(sql) {
        "select" | "delete" => "FROM",
        "insert" => "INTO",
        "update" => "UPDATE",
        _ => return "unknown".to_owned(),
    };
    first_name_after(sql.trim(), keyword)
        .map_or_else(|| "unknown".to_owned(), |name| name.to_ascii_lowercase())
}

/// The first `KEYWORD\s+["']?(\w+)` in `sql`, case-insensitively (the keyword may sit inside a
/// longer word, as in Fluxbase's unanchored pattern).
fn first_name_after<'a>(sql: &'a str, keyword: &str) -> Option<&'a str> {
    let bytes = sql.as_bytes();
    let keyword = keyword.as_bytes();
    (0..bytes.len().saturating_sub(keyword.len()) + 1).find_map(|start| {
        if !bytes[start..]
            .get(..keyword.len())?
            .eq_ignore_ascii_case(keyword)
        {
            return None;
        }
        let mut i = start + keyword.len();
        let spaces = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        if spaces == 0 {
            return None;
        }
        i += spaces;
        if matches!(bytes.get(i), Some(b'"' | b'\'')) {
            i += 1;
        }
        let length = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        (length > 0).then(|| &sql[i..i + length])
    })
}

/// The `identifier` label of a rate-limit hit: the first 8 bytes of SHA-256 of the client IP,
/// as 16 lower-case hex characters. The raw IP never becomes a label.
pub fn rate_limit_identifier(ip: &str) -> String {
    let digest = Sha256::digest(ip.as_bytes());
    let mut hex = String::with_capacity(16);
    for byte in &digest[..8] {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Fluxbase's rate limiters by route (its auth routes under `/api/v1/auth`); anything else that
/// answers 429 is the global limiter, storage uploads aside.
const LIMITERS: &[(&str, &str)] = &[
    ("/api/v1/auth/signin", "auth_login"),
    ("/api/v1/auth/signup", "auth_signup"),
    ("/api/v1/auth/refresh", "auth_refresh"),
    ("/api/v1/auth/magiclink", "auth_magic_link"),
    ("/api/v1/auth/verify-email/resend", "auth_magic_link"),
    ("/api/v1/auth/password/reset", "auth_password_reset"),
    ("/api/v1/auth/2fa/verify", "auth_2fa"),
    ("/api/v1/auth/otp/verify", "auth_2fa"),
];

const STORAGE_PREFIX: &str = "/api/v1/storage/";

/// A storage object operation read off a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageOperation<'a> {
    pub operation: &'static str,
    pub bucket: &'a str,
}

/// The object operation of a storage API request, as Fluxbase routes it:
/// `POST /{bucket}/{path...}`, `POST /{bucket}/multipart`, `POST /{bucket}/stream/{path...}` and
/// `POST /{bucket}/chunked/{id}/complete` upload; `GET`/`HEAD /{bucket}/{path...}` download;
/// `DELETE /{bucket}/{path...}` deletes. Listing, `buckets`, `sign`, `share(s)`, `copy`, `move`,
/// the signed `object` route (its bucket is inside a token) and the other chunked steps are not
/// object operations.
pub fn storage_operation<'a>(method: &str, path: &'a str) -> Option<StorageOperation<'a>> {
    let rest = path.strip_prefix(STORAGE_PREFIX)?;
    let (bucket, object) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || matches!(bucket, "buckets" | "object" | "config") {
        return None;
    }
    let object = object.trim_end_matches('/');
    if object.is_empty() {
        return None; // GET /{bucket}: the bucket's listing.
    }
    // Only the first, the last two and the count of segments matter (no allocation).
    let first = object.split('/').next().unwrap_or_default();
    let mut from_end = object.rsplit('/');
    let last = from_end.next().unwrap_or_default();
    let before_last = from_end.next();
    let count = object.bytes().filter(|b| *b == b'/').count() + 1;
    let operation = match method {
        "POST" => match first {
            "sign" | "copy" | "move" => return None,
            "chunked" => (count == 3 && last == "complete").then_some("upload")?,
            _ if last == "share" && count > 1 => return None,
            _ => "upload",
        },
        "GET" | "HEAD" => {
            if first == "chunked" || (last == "shares" && count > 1) {
                return None;
            }
            "download"
        }
        "DELETE" => {
            if count > 2 && before_last == Some("share") {
                return None;
            }
            "delete"
        }
        _ => return None,
    };
    Some(StorageOperation { operation, bucket })
}

/// The limiter whose 429 a request got, by its route.
pub fn limiter_type(path: &str) -> &'static str {
    if let Some((_, limiter)) = LIMITERS.iter().find(|(route, _)| *route == path) {
        return limiter;
    }
    // Fluxbase limits streamed and chunked uploads with its storage_upload limiter.
    if let Some(rest) = path.strip_prefix(STORAGE_PREFIX) {
        let mut segments = rest.split('/').skip(1);
        match (segments.next(), segments.next()) {
            (Some("stream"), Some(_)) | (Some("chunked"), Some("init")) => return "storage_upload",
            _ => {}
        }
    }
    "global"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_the_class_never_the_code() {
        for (code, class) in [
            (200, "2xx"),
            (204, "2xx"),
            (301, "3xx"),
            (404, "4xx"),
            (429, "4xx"),
            (500, "5xx"),
            (503, "5xx"),
            (600, "5xx"),
        ] {
            assert_eq!(status_class(code), class, "{code}");
        }
        for code in [0, 101, 199, -1] {
            assert_eq!(status_class(code), "unknown", "{code}");
        }
    }

    #[test]
    fn paths_replace_uuid_and_numeric_segments() {
        let cases = [
            (
                "/api/v1/users/550e8400-e29b-41d4-a716-446655440000",
                "/api/v1/users/:id",
            ),
            (
                "/api/v1/users/550E8400-E29B-41D4-A716-446655440000/roles",
                "/api/v1/users/:id/roles",
            ),
            (
                "/api/v1/tables/users/records/12345",
                "/api/v1/tables/users/records/:id",
            ),
            ("/", "/"),
            ("", ""),
            (
                "/api/v1/tables/t1/records/12a",
                "/api/v1/tables/t1/records/12a",
            ),
            ("/a//7/", "/a//:id/"),
            (
                "/api/v1/x/550e8400-e29b-41d4-a716-44665544000g",
                "/api/v1/x/550e8400-e29b-41d4-a716-44665544000g",
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(normalize_path(path), expected, "{path}");
        }
        assert!(matches!(
            normalize_path("/api/v1/tables/users"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn normalizing_into_a_buffer_agrees() {
        let mut out = String::new();
        for path in [
            "/api/v1/users/550e8400-e29b-41d4-a716-446655440000",
            "/",
            "",
            "/a//7/",
            &"x".repeat(201),
        ] {
            out.clear();
            normalize_path_into(path, &mut out);
            assert_eq!(out, normalize_path(path), "{path}");
        }
    }

    #[test]
    fn paths_over_200_bytes_are_long_path() {
        let exactly = format!("/{}", "a".repeat(199));
        assert_eq!(normalize_path(&exactly), exactly);
        assert_eq!(
            normalize_path(&format!("/{}", "a".repeat(200))),
            "long_path"
        );
    }

    #[test]
    fn sql_operation_is_the_first_keyword() {
        let cases = [
            ("SELECT * FROM users", "select"),
            ("  select 1", "select"),
            ("INSERT INTO t VALUES ($1)", "insert"),
            ("update t set a = $1", "update"),
            ("DELETE FROM t", "delete"),
            ("WITH x AS (SELECT 1) SELECT * FROM x", "other"),
            ("/* c */ SELECT 1", "other"),
            ("TRUNCATE t", "other"),
            ("", "other"),
        ];
        for (sql, operation) in cases {
            assert_eq!(sql_operation(sql), operation, "{sql}");
        }
    }

    #[test]
    fn sql_table_follows_fluxbase_including_its_schema_quirk() {
        let cases = [
            ("SELECT * FROM users WHERE id = $1", "users"),
            ("select * from \"Users\"", "users"),
            ("SELECT * FROM public.users", "public"),
            (
                "SELECT count(*) FROM auth.sessions WHERE expires_at > now()",
                "auth",
            ),
            ("SELECT * FROM (SELECT * FROM users) s", "users"),
            ("INSERT INTO storage.objects (id) VALUES ($1)", "storage"),
            ("INSERT INTO t_1 VALUES ($1)", "t_1"),
            ("UPDATE jobs.queue SET status = $1", "jobs"),
            ("DELETE FROM logs WHERE x", "logs"),
            ("SELECT 1", "unknown"),
            ("WITH x AS (SELECT 1 FROM y) SELECT * FROM x", "unknown"),
            ("SELECT extract(epoch FROM now())", "now"),
        ];
        for (sql, table) in cases {
            assert_eq!(sql_table(sql), table, "{sql}");
        }
    }

    #[test]
    fn rate_limit_identifier_is_16_hex_of_sha256() {
        let id = rate_limit_identifier("203.0.113.7");
        assert_eq!(id.len(), 16);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let full: String = Sha256::digest(b"203.0.113.7")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(id, full[..16]);
        assert_eq!(rate_limit_identifier("127.0.0.1"), "12ca17b49af22894");
    }

    #[test]
    fn storage_routes_follow_fluxbase() {
        // (request, "operation bucket", or "" for no object operation)
        let cases = [
            ("POST /api/v1/storage/avatars/u/1.png", "upload avatars"),
            ("POST /api/v1/storage/avatars/multipart", "upload avatars"),
            (
                "POST /api/v1/storage/avatars/stream/big.bin",
                "upload avatars",
            ),
            (
                "POST /api/v1/storage/avatars/chunked/abc123/complete",
                "upload avatars",
            ),
            ("POST /api/v1/storage/avatars/chunked/init", ""),
            ("PUT /api/v1/storage/avatars/chunked/abc123/3", ""),
            ("GET /api/v1/storage/avatars/chunked/abc123/status", ""),
            ("GET /api/v1/storage/avatars/u/1.png", "download avatars"),
            ("HEAD /api/v1/storage/docs/a.pdf", "download docs"),
            ("DELETE /api/v1/storage/docs/a.pdf", "delete docs"),
            ("GET /api/v1/storage/docs", ""),
            ("GET /api/v1/storage/docs/", ""),
            ("GET /api/v1/storage/buckets", ""),
            ("POST /api/v1/storage/buckets/docs", ""),
            ("DELETE /api/v1/storage/buckets/docs", ""),
            ("POST /api/v1/storage/docs/sign/a.pdf", ""),
            ("POST /api/v1/storage/docs/a.pdf/share", ""),
            ("DELETE /api/v1/storage/docs/a.pdf/share/u1", ""),
            ("GET /api/v1/storage/docs/a.pdf/shares", ""),
            ("POST /api/v1/storage/docs/copy", ""),
            ("POST /api/v1/storage/docs/move", ""),
            ("GET /api/v1/storage/object", ""),
            ("GET /api/v1/tables/docs", ""),
            ("PATCH /api/v1/storage/docs/a.pdf", ""),
        ];
        for (request, expected) in cases {
            let (method, path) = request.split_once(' ').unwrap();
            let found = storage_operation(method, path)
                .map(|op| format!("{} {}", op.operation, op.bucket))
                .unwrap_or_default();
            assert_eq!(found, expected, "{request}");
        }
    }

    #[test]
    fn limiters_by_route() {
        let cases = [
            ("/api/v1/auth/signin", "auth_login"),
            ("/api/v1/auth/signup", "auth_signup"),
            ("/api/v1/auth/refresh", "auth_refresh"),
            ("/api/v1/auth/magiclink", "auth_magic_link"),
            ("/api/v1/auth/verify-email/resend", "auth_magic_link"),
            ("/api/v1/auth/password/reset", "auth_password_reset"),
            ("/api/v1/auth/2fa/verify", "auth_2fa"),
            ("/api/v1/auth/otp/verify", "auth_2fa"),
            ("/api/v1/storage/avatars/stream/x.bin", "storage_upload"),
            ("/api/v1/storage/avatars/chunked/init", "storage_upload"),
            ("/api/v1/storage/avatars/x.bin", "global"),
            ("/api/v1/tables/users", "global"),
        ];
        for (path, limiter) in cases {
            assert_eq!(limiter_type(path), limiter, "{path}");
        }
    }
}
