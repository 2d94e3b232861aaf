//! Files sent from a console form (`multipart/form-data`): the set-up imports. A form carries
//! its text fields and one file; the file's text may come instead in the field `text`, which the
//! page of a dry run fills so the checked file can be imported without choosing it again.

use std::collections::HashMap;

use std::future::{ready, Ready};

use actix_multipart::Multipart;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt as _;

use super::console::Console;
use crate::error::{ApiError, ErrorCode};

/// Largest file a form takes: the postcode areas of a whole country fit many times.
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// A `multipart/form-data` body not read yet. Its content type is checked before anything else,
/// so a request that is not such a form is refused (415) whether or not it is signed in.
pub struct UploadForm(Multipart);

impl FromRequest for UploadForm {
    type Error = ApiError;
    type Future = Ready<Result<UploadForm, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            });
        ready(if is_form {
            Ok(UploadForm(Multipart::new(request.headers(), payload.take())))
        } else {
            Err(ApiError::new(ErrorCode::UnsupportedMediaType)
                .with_message("This form sends a file: use Content-Type multipart/form-data."))
        })
    }
}

/// A form with a file.
pub struct Upload {
    fields: HashMap<String, String>,
    text: String,
}

impl Upload {
    /// A text field; empty when the form did not send it.
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }

    /// The file's text (or the `text` field's).
    pub fn text(&self) -> Result<&str, ApiError> {
        if self.text.trim().is_empty() {
            return Err(ApiError::invalid("file", "Please choose a CSV file."));
        }
        Ok(&self.text)
    }

    /// Whether a checkbox was ticked.
    pub fn ticked(&self, name: &str) -> bool {
        !self.field(name).is_empty()
    }

    /// Reads a console's form: its CSRF token must be this session's and it must carry a file.
    pub async fn checked(console: &Console, form: UploadForm) -> Result<Upload, ApiError> {
        let upload = Upload::read(form.0).await?;
        console.check_form(upload.field("csrf"))?;
        upload.text()?;
        Ok(upload)
    }

    /// Reads the form: text fields, and the file field `file` as UTF-8.
    pub async fn read(mut form: Multipart) -> Result<Upload, ApiError> {
        let mut fields = HashMap::new();
        let mut file = None;
        let mut total = 0;
        while let Some(part) = form.next().await {
            let mut part =
                part.map_err(|e| ApiError::malformed(format!("The form could not be read: {e}.")))?;
            let name = part.name().unwrap_or_default().to_owned();
            let mut bytes = Vec::new();
            while let Some(chunk) = part.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::malformed(format!("The form could not be read: {e}.")))?;
                total += chunk.len();
                if total > MAX_BYTES {
                    return Err(ApiError::new(ErrorCode::PayloadTooLarge).with_message(format!(
                        "The file is larger than {} MiB. Please split it and import the parts one after the other.",
                        MAX_BYTES / 1024 / 1024
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(bytes).map_err(|_| {
                ApiError::invalid(
                    "file",
                    "The file is not UTF-8 text. Please save it as CSV (UTF-8) and choose it again.",
                )
            })?;
            if name == "file" {
                file = Some(text);
            } else {
                fields.insert(name, text);
            }
        }
        let text = match file.filter(|text| !text.is_empty()) {
            Some(text) => text,
            None => fields.remove("text").unwrap_or_default(),
        };
        Ok(Upload { fields, text })
    }
}
