//! Answers that several routes give alike: what came of a registrant's request (booked,
//! declined, cancelled, withdrawn), whoever made it, and the SMS code's state.

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::use_cases::answer_offer::Booked;
use crate::use_cases::Outcome;

/// How the person proves the phone is theirs.
#[derive(Serialize)]
pub struct CodeSent {
    pub channel: &'static str,
    pub expires_at: DateTime<Utc>,
    pub attempts_left: i16,
}

impl CodeSent {
    pub fn by_sms(expires_at: DateTime<Utc>, attempts_left: i16) -> Self {
        CodeSent {
            channel: "sms",
            expires_at,
            attempts_left,
        }
    }
}

#[derive(Serialize)]
struct BookedAnswer {
    booking: Booked,
    message: &'static str,
}

#[derive(Default, Serialize)]
struct Ended<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    offer: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    booking: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    message: &'a str,
}

/// 200 with what came of the request.
pub fn outcome(outcome: Outcome) -> HttpResponse {
    let ended = match outcome {
        Outcome::Booked(booked) => return booked_answer(*booked),
        Outcome::Declined { offer } => return declined_answer(offer),
        Outcome::Cancelled { booking } => Ended {
            booking: Some(booking),
            state: Some("cancelled"),
            message: "Cancelled. The appointments go to someone else; you stay in the pool for later draws.",
            ..Ended::default()
        },
        Outcome::Withdrawn { registration } => Ended {
            registration_id: Some(registration),
            status: Some("withdrawn"),
            message: "Your registration is withdrawn and your phone number, email, birth year and choices are erased. The booking code no longer works.",
            ..Ended::default()
        },
    };
    HttpResponse::Ok().json(ended)
}

pub fn booked_answer(booked: Booked) -> HttpResponse {
    HttpResponse::Ok().json(BookedAnswer {
        booking: booked,
        message: "Both appointments are booked. We sent the confirmation with your QR code; show it at the centre.",
    })
}

pub fn declined_answer(offer: Uuid) -> HttpResponse {
    HttpResponse::Ok().json(Ended {
        offer: Some(offer),
        state: Some("declined"),
        message: "Declined. You stay in the pool and take part in the next draws.",
        ..Ended::default()
    })
}
