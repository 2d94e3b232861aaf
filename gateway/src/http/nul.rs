//! Text with a NUL character is refused at the edge, before any handler: PostgreSQL cannot
//! store a NUL in text, so it would otherwise fail deep inside as our own error (500). One
//! middleware checks every path parameter, query parameter, form field and JSON string (keys
//! too), and answers 422 `invalid_field` naming the field. A request without `%00` or
//! `\u0000` in it, which is every honest one, costs a byte search.

use std::pin::Pin;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use actix_web::HttpMessage as _;
use futures_util::{Stream, StreamExt};
use memchr::memmem;
use serde_json::Value;

use crate::error::ApiError;

/// Bodies up to this size are checked: the most any handler reads (actix's payload limit).
const BODY_LIMIT: usize = 256 * 1024;

/// A NUL as the query, a path or a form encodes it.
const ENCODED: &[u8] = b"%00";
/// A NUL as JSON encodes it (JSON text cannot hold a raw one).
const ESCAPED: &[u8] = b"\\u0000";

/// The middleware: refuses a request with a NUL anywhere a handler reads text.
pub async fn refuse_nul<B: MessageBody>(
    mut request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match check(&mut request).await {
        Ok(()) => next.call(request).await.map(ServiceResponse::map_into_left_body),
        Err(error) => Ok(request.error_response(error).map_into_right_body()),
    }
}

async fn check(request: &mut ServiceRequest) -> Result<(), ApiError> {
    if memmem::find(request.path().as_bytes(), ENCODED).is_some() {
        return Err(refusal(path_parameter(request)));
    }
    if let Some(field) = in_urlencoded(request.query_string().as_bytes()) {
        return Err(refusal(field));
    }
    let headers = request.headers();
    let has_body = headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    if !has_body {
        return Ok(());
    }
    // Handlers that read JSON from bytes do not look at the content type, so only a form is
    // read as anything but JSON (where `%00` is just text).
    let form = headers
        .get(CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    let Some(body) = read_body(request).await? else {
        return Ok(());
    };
    let field = if form {
        in_urlencoded(&body)
    } else {
        in_json(&body)
    };
    request.set_payload(Payload::from(body));
    field.map_or(Ok(()), |field| Err(refusal(field)))
}

fn refusal(field: String) -> ApiError {
    let message = format!("`{field}` contains a NUL character (U+0000), which we cannot accept.");
    ApiError::invalid(field, message)
}

/// The name of the route's parameter whose segment holds the NUL (`path` if none does).
fn path_parameter(request: &ServiceRequest) -> String {
    let pattern = request.match_pattern().unwrap_or_default();
    let segment = request
        .path()
        .split('/')
        .position(|segment| memmem::find(segment.as_bytes(), ENCODED).is_some());
    segment
        .and_then(|at| pattern.split('/').nth(at))
        .and_then(|segment| segment.strip_prefix('{')?.split(['}', ':']).next())
        .map_or_else(|| "path".to_owned(), str::to_owned)
}

/// The first field of a query or form whose name or value holds a NUL.
fn in_urlencoded(text: &[u8]) -> Option<String> {
    memmem::find(text, ENCODED)?;
    text.split(|&b| b == b'&')
        .find(|pair| memmem::find(pair, ENCODED).is_some())
        .map(|pair| {
            // Our parameters' names need no decoding.
            let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
            String::from_utf8_lossy(name).replace("%00", "\\u0000")
        })
}

/// Where in a JSON body a string (or a key) holds a NUL, as `a.b[2]`.
fn in_json(body: &[u8]) -> Option<String> {
    memmem::find(body, ESCAPED)?;
    // Not JSON: the handler says so. (`\\u0000` is a backslash and text, found nothing below.)
    let value: Value = serde_json::from_slice(body).ok()?;
    nul_at(&value, String::new())
}

fn nul_at(value: &Value, at: String) -> Option<String> {
    let field = |name: &str| {
        if at.is_empty() {
            name.to_owned()
        } else {
            format!("{at}.{name}")
        }
    };
    match value {
        Value::String(text) if text.contains('\0') => Some(if at.is_empty() { "body".into() } else { at }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_at(item, format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(name, item)| {
            if name.contains('\0') {
                Some(field(&name.replace('\0', "\\u0000")))
            } else {
                nul_at(item, field(name))
            }
        }),
        _ => None,
    }
}

/// The whole body, or `None` (and the body left as it was) if it is larger than any handler
/// reads: the handler refuses it.
async fn read_body(request: &mut ServiceRequest) -> Result<Option<Bytes>, ApiError> {
    let mut payload = request.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|error| ApiError::malformed(format!("The request could not be read: {error}")))?;
        body.extend_from_slice(&chunk);
        if body.len() > BODY_LIMIT {
            let read = futures_util::stream::once(async move { Ok(body.freeze()) });
            let whole: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
                Box::pin(read.chain(payload));
            request.set_payload(Payload::from(whole));
            return Ok(None);
        }
    }
    Ok(Some(body.freeze()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_the_json_field_that_holds_a_nul() {
        let body = |value: Value| serde_json::to_vec(&value).unwrap();
        assert_eq!(
            in_json(&body(json!({ "username": "a\u{0}" }))).as_deref(),
            Some("username")
        );
        assert_eq!(
            in_json(&body(json!({ "config": { "guards": ["bw", "b\u{0}"] } }))).as_deref(),
            Some("config.guards[1]")
        );
        assert_eq!(
            in_json(&body(json!({ "a\u{0}b": 1 }))).as_deref(),
            Some("a\\u0000b")
        );
        assert_eq!(in_json(&body(json!("\u{0}"))).as_deref(), Some("body"));
        assert_eq!(in_json(br#"{"text": "\\u0000 is fine"}"#), None);
        assert_eq!(in_json(br#"{"text": "plain"}"#), None);
    }

    #[test]
    fn names_the_query_or_form_field_that_holds_a_nul() {
        assert_eq!(in_urlencoded(b"limit=5&region=b%00w").as_deref(), Some("region"));
        assert_eq!(in_urlencoded(b"na%00me=x").as_deref(), Some("na\\u0000me"));
        assert_eq!(in_urlencoded(b"region=bw&x=%2500"), None);
        assert_eq!(in_urlencoded(b""), None);
    }
}
