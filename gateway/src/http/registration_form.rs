//! The registration form as pages read it, for a person registering themselves and for an
//! agent registering a caller: what was entered (shown again when a field is refused), the
//! policy's choices, and the use case's form with every missing field named at once.

use drawbridge_domain::{Label, Language, Policy};
use serde::Serialize;

use crate::error::ApiError;
use crate::use_cases::register::RegistrationForm;

/// The distance people are asked for first.
pub const DISTANCE_KM: u32 = 30;

/// What the person entered, shown again when a field is refused.
#[derive(Serialize, Default)]
pub struct Entered {
    pub phone: String,
    pub email: String,
    pub birth_year: String,
    pub initials: String,
    pub priority_group: Option<u8>,
    pub postcode: String,
    pub vaccines: Vec<String>,
    pub max_distance_km: String,
    /// The language of the person's messages; an agent asks the caller, a person's own form
    /// takes the page's.
    pub language: String,
}

impl Entered {
    /// What another person on the same phone shares with this one: the phone, postcode,
    /// language, vaccines and distance; the rest is theirs to give.
    pub fn household(self) -> Entered {
        Entered {
            phone: self.phone,
            postcode: self.postcode,
            language: self.language,
            vaccines: self.vaccines,
            max_distance_km: self.max_distance_km,
            ..Entered::default()
        }
    }
}

/// A priority group or vaccine to choose.
#[derive(Serialize)]
pub struct Choice<'a> {
    pub value: String,
    pub name: &'a Label,
    pub chosen: bool,
}

/// The policy's priority groups to choose from, the one entered chosen.
pub fn groups<'a>(policy: &'a Policy, entered: &Entered) -> Vec<Choice<'a>> {
    policy
        .groups
        .iter()
        .map(|group| Choice {
            value: group.id.to_string(),
            name: &group.name,
            chosen: entered.priority_group == Some(group.id),
        })
        .collect()
}

/// The policy's vaccines to choose from, those entered chosen.
pub fn vaccines<'a>(policy: &'a Policy, entered: &Entered) -> Vec<Choice<'a>> {
    policy
        .vaccines
        .iter()
        .map(|vaccine| Choice {
            value: vaccine.code.clone(),
            name: &vaccine.name,
            chosen: entered.vaccines.contains(&vaccine.code),
        })
        .collect()
}

/// The form's fields; read by hand because a form repeats `vaccine` once per checkbox.
pub fn read_form(fields: Vec<(String, String)>) -> Entered {
    let mut entered = Entered::default();
    for (key, value) in fields {
        match key.as_str() {
            "phone" => entered.phone = value,
            "email" => entered.email = value,
            "birth_year" => entered.birth_year = value,
            "initials" => entered.initials = value,
            "priority_group" => entered.priority_group = value.trim().parse().ok(),
            "postcode" => entered.postcode = value,
            "vaccine" => entered.vaccines.push(value),
            "max_distance_km" => entered.max_distance_km = value,
            "language" => entered.language = value,
            _ => {}
        }
    }
    entered
}

/// The registration the form asks for. Fields left empty or numbers that are not numbers are
/// all named at once; everything else is checked by the use case, which names the first
/// problem it finds.
pub fn registration_form(entered: &Entered, language: Language) -> Result<RegistrationForm, Vec<ApiError>> {
    let mut problems = Vec::new();
    let mut required = |field: &'static str, text: &str| {
        if text.trim().is_empty() {
            problems.push(ApiError::invalid(field, "Please fill in this field."));
        }
    };
    required("phone", &entered.phone);
    required("postcode", &entered.postcode);
    let birth_year = entered.birth_year.trim().parse();
    let max_distance_km = entered.max_distance_km.trim().parse();
    for (field, wrong) in [
        ("birth_year", birth_year.is_err()),
        ("priority_group", entered.priority_group.is_none()),
        ("accepted_vaccines", entered.vaccines.is_empty()),
        ("max_distance_km", max_distance_km.is_err()),
    ] {
        if wrong {
            problems.push(ApiError::invalid(field, "Please fill in this field."));
        }
    }
    let (Ok(birth_year), Some(priority_group), Ok(max_distance_km), true) = (
        birth_year,
        entered.priority_group,
        max_distance_km,
        problems.is_empty(),
    ) else {
        // Shown in the order of the form.
        let order = [
            "phone",
            "birth_year",
            "priority_group",
            "postcode",
            "accepted_vaccines",
            "max_distance_km",
        ];
        problems.sort_by_key(|problem| order.iter().position(|field| Some(*field) == problem.field()));
        return Err(problems);
    };
    let text = |text: &str| Some(text.trim().to_owned()).filter(|text| !text.is_empty());
    Ok(RegistrationForm {
        phone: entered.phone.clone(),
        email: text(&entered.email),
        birth_year,
        initials: text(&entered.initials),
        priority_group,
        postcode: entered.postcode.clone(),
        accepted_vaccines: entered.vaccines.clone(),
        max_distance_km,
        language,
    })
}
