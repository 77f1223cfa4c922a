//! Request extractors whose rejections are problem details.

use super::problem::Problem;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Whether a request's `Content-Type` is JSON (`application/json` or
/// `application/*+json`, with any parameters).
fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// What a body may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// A JSON object: a request's fields.
    Object,
    /// Any JSON value: a result or an event's payload.
    Any,
}

/// Whether reading the body failed because it stalled (the server's
/// `RequestBodyTimeout`).
fn stalled(rejection: &BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The kind of a JSON value, for a message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The problem of a data error (a value of the wrong type or out of range,
/// an unknown or missing field), naming the field by its path.
fn data_problem(e: &serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = e.path().to_string();
    // "." is the body itself; "?" stands for a part the deserializer did not
    // reach (no field).
    let field = if path == "." || path.contains('?') {
        "body".to_owned()
    } else {
        path
    };
    Problem::bad_request(&field, e.inner().to_string())
}

/// Reads the body within the configured limit; an empty body is `None`.
async fn read_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
    shape: Shape,
) -> Result<Option<T>, Problem> {
    let json = is_json(&req);
    let bytes = Bytes::from_request(req, state).await.map_err(|r| {
        let status = r.status();
        if stalled(&r) {
            Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
                "the request body stopped arriving before it was complete",
            )
        } else if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                status,
                "body-too-large",
                "Request body too large",
                "the request body is larger than the server accepts",
            )
        } else {
            // A body that cannot be read (a broken chunked encoding) is the
            // client's: 400, with the body as the field at fault.
            Problem::bad_request("body", r.body_text())
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "the request body must be JSON, sent with Content-Type: application/json",
        ));
    }
    // A request's fields come in an object: serde's derived structs also
    // take an array, field by field in declaration order, which no client
    // means to send.
    if shape == Shape::Object && bytes.trim_ascii_start().first() != Some(&b'{') {
        let detail = match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => format!("the body must be a JSON object, not {}", kind(&value)),
            Err(e) => e.to_string(),
        };
        return Err(Problem::bad_request("body", detail));
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => value,
        Err(e) if e.inner().is_data() => return Err(data_problem(&e)),
        Err(e) => {
            // serde_json reports a value of the wrong JSON type for an enum
            // (`"dst_gap": 1`, an object with two variants) as a syntax
            // error at that value, though the body is well formed. Read
            // from the parsed value instead, every error is a data error,
            // with the field's path. A real syntax error is about the body
            // as a whole (where the parser stopped is no field).
            let value = serde_json::from_slice::<Value>(&bytes)
                .map_err(|syntax| Problem::bad_request("body", syntax.to_string()))?;
            return Err(match serde_path_to_error::deserialize::<_, T>(&value) {
                Err(data) => data_problem(&data),
                Ok(_) => Problem::bad_request("body", e.inner().to_string()),
            });
        }
    };
    // Only whitespace may follow the value (as `serde_json::from_slice`
    // checks): `{...} junk`, or two values in a row, is not one JSON body,
    // and its first value must not be acted on.
    de.end()
        .map_err(|e| Problem::bad_request("body", e.to_string()))?;
    Ok(Some(value))
}

/// A required JSON body: a JSON object, the request's fields.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match read_json(req, state, Shape::Object).await? {
            Some(value) => Ok(Self(value)),
            None => Err(Problem::bad_request("body", "a JSON body is required")),
        }
    }
}

/// An optional JSON body: an empty body is `None`, another a JSON object.
pub(crate) struct OptionalJsonBody<T>(pub(crate) Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state, Shape::Object).await.map(Self)
    }
}

/// A required body of any JSON value.
pub(crate) struct JsonValue(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for JsonValue {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match read_json(req, state, Shape::Any).await? {
            Some(value) => Ok(Self(value)),
            None => Err(Problem::bad_request("body", "a JSON body is required")),
        }
    }
}

/// An optional body of any JSON value: an empty body is `None`.
pub(crate) struct OptionalJsonValue(pub(crate) Option<Value>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonValue {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state, Shape::Any).await.map(Self)
    }
}

/// The query string.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Deserialized here rather than with axum's `Query`, so that the
        // problem names the parameter at fault (`limit`), not the query.
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." || path.contains('?') {
                "query".to_owned()
            } else {
                path
            };
            Problem::bad_request(&field, format!("invalid query: {}", e.inner()))
        })
    }
}

/// The one path parameter of a route (a job id or an event name),
/// percent-decoded.
pub(crate) struct PathParam(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Self(p))
            .map_err(|r| Problem::bad_request("path", r.body_text()))
    }
}
