//! A refusal as a page says it: in the page's language, from the section of the texts the
//! page keeps its refusals in, tied to the field it concerns.

use drawbridge_domain::Language;
use serde::Serialize;

use crate::error::ApiError;
use crate::AppState;

/// A problem with what was entered: the field it belongs to (its element id), if any.
#[derive(Serialize)]
pub struct Problem {
    pub field: Option<String>,
    pub message: String,
}

/// `refused` in `language`: the text of `section` named after its field, else after its error
/// code, else the API's own message.
pub fn problem(state: &AppState, language: Language, section: &str, refused: &ApiError) -> Problem {
    // `accepted_vaccines[2]` and the like belong to the field before the index; the forms'
    // checkboxes are the fieldset `vaccines`.
    let field = refused
        .field()
        .map(|field| match field.split(['[', '.']).next().unwrap_or(field) {
            "accepted_vaccines" => "vaccines".to_owned(),
            field => field.to_owned(),
        });
    let key = field
        .clone()
        .unwrap_or_else(|| refused.code().as_str().to_owned());
    let said = state.templates.text(language, section, &key).map(|text| {
        let attempts = refused.attempts_left().unwrap_or_default();
        text.replace("{attempts}", &attempts.to_string())
    });
    let message = said.unwrap_or_else(|| refused.public_message());
    Problem { field, message }
}
