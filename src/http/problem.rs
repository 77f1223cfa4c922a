//! Errors as RFC 9457 problem details (`application/problem+json`).

use super::dto::{field_of, SpecError};
use crate::Error;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of a problem details body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer of the API, as RFC 9457 problem details.
///
/// `type` is a URN naming the kind of problem (`urn:cronactor:problem:unknown-job`,
/// ...), `title` its short description, `detail` this occurrence's message
/// (for errors of the library, exactly its `Display`). Extension members:
/// `field` (the offending request field, for 400) and `job_id`.
///
/// ```
/// use cronactor::http::Problem;
/// let p = Problem::from(cronactor::Error::ShutDown);
/// assert_eq!(p.status, 503);
/// assert_eq!(p.detail, "the scheduler is shut down");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URN naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request field at fault (400 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The job concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

impl Problem {
    /// A problem of kind `urn:cronactor:problem:{slug}`.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:cronactor:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            job_id: None,
        }
    }

    /// 400: a request field is invalid.
    pub fn bad_request(field: &str, detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        );
        p.field = Some(field.to_owned());
        p
    }

    /// 404: no such route.
    pub(crate) fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no-route",
            "No such route",
            format!("no route {path}; see /openapi.json"),
        )
    }

    /// 405: the route exists with other methods.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this route does not accept this method; see /openapi.json",
        )
    }

    /// 401: no token, or an unknown one.
    pub(crate) fn unauthorized(detail: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// 403: a read-only token on an admin route, or a disabled operation.
    pub(crate) fn forbidden(slug: &str, detail: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, slug, "Forbidden", detail)
    }

    /// The status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn with_job(mut self, id: impl ToString) -> Self {
        self.job_id = Some(id.to_string());
        self
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        match &e {
            Error::Schedule(_)
            | Error::InvalidJobId(_)
            | Error::InvalidSpec { .. }
            | Error::UnknownHandler(_) => {
                let mut p = Self::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-spec",
                    "Invalid job spec",
                    detail,
                );
                p.field = field_of(&e).map(str::to_owned);
                p
            }
            Error::DuplicateJob(id) => Self::new(
                StatusCode::CONFLICT,
                "duplicate-job",
                "Job already exists",
                detail,
            )
            .with_job(id),
            Error::UnknownJob(id) => {
                Self::new(StatusCode::NOT_FOUND, "unknown-job", "No such job", detail).with_job(id)
            }
            Error::UnknownRun(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown-run", "No such run", detail)
            }
            Error::InvalidBackfill(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
                detail,
            ),
            Error::InvalidPayload(_) => {
                let mut p = Self::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    "Invalid request",
                    detail,
                );
                p.field = Some("payload".to_owned());
                p
            }
            Error::InvalidResult(_) => {
                let mut p = Self::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    "Invalid request",
                    detail,
                );
                p.field = Some("result".to_owned());
                p
            }
            Error::InvalidSelector(_) => {
                let mut p = Self::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    "Invalid request",
                    detail,
                );
                p.field = Some("tag".to_owned());
                p
            }
            Error::InvalidState { id, .. } => Self::new(
                StatusCode::CONFLICT,
                "invalid-state",
                "Conflicting job state",
                detail,
            )
            .with_job(id),
            Error::ShutDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shut-down",
                "Scheduler shut down",
                detail,
            ),
            Error::Timeout(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "Scheduler busy",
                detail,
            ),
            Error::Store(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store",
                "Store failure",
                detail,
            ),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                detail,
            ),
        }
    }
}

impl From<SpecError> for Problem {
    fn from(e: SpecError) -> Self {
        let mut p = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-spec",
            "Invalid job spec",
            e.message,
        );
        p.field = Some(e.field);
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cronactor\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
