//! What people do, one module each: the decisions and the transaction of each thing a citizen,
//! an agent or centre staff does. A use case never builds an HTTP answer and never writes SQL:
//! handlers (`http`) call it, it calls the `store`.

pub mod admission;
pub mod analysis;
pub mod answer_offer;
pub mod call_centre;
pub mod cancel;
pub mod capacity;
pub mod check_in;
pub mod draws;
pub mod expiry;
pub mod my_data;
pub mod my_status;
pub mod offer_link;
pub mod operators;
pub mod pass;
pub mod purge;
pub mod region_setup;
pub mod register;
pub mod rules;
pub mod staff;
pub mod verify;
pub mod withdraw;

use drawbridge_domain::{Field, StaffMember, StaffRefusal};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::store::registrants::Registrant;
use crate::store::staff::{record, Action};
use crate::AppState;

/// What a registrant asks for, themselves (booking code) or through an agent.
#[derive(Debug, Clone, Copy)]
pub enum Request {
    Accept,
    Decline,
    Cancel,
    Withdraw,
}

/// What came of a [`Request`].
pub enum Outcome {
    Booked(Box<answer_offer::Booked>),
    Declined { offer: Uuid },
    Cancelled { booking: Uuid },
    Withdrawn { registration: Uuid },
}

/// Carries out `request` for `registrant`: the one path behind both the booking-code routes and
/// the call-centre routes.
pub async fn act(
    state: &AppState,
    registrant: &Registrant,
    acting: &Acting<'_>,
    request: Request,
) -> Result<Outcome, ApiError> {
    Ok(match request {
        Request::Accept => {
            let offer = answer_offer::current_offer(registrant)?;
            Outcome::Booked(Box::new(
                answer_offer::accept(state, offer, Some(registrant), acting).await?,
            ))
        }
        Request::Decline => {
            let offer = answer_offer::current_offer(registrant)?;
            answer_offer::decline(state, offer, Some(registrant.id), acting).await?;
            Outcome::Declined { offer }
        }
        Request::Cancel => Outcome::Cancelled {
            booking: cancel::cancel(state, registrant.id, acting).await?,
        },
        Request::Withdraw => {
            withdraw::withdraw(state, registrant.id, acting).await?;
            Outcome::Withdrawn {
                registration: registrant.id,
            }
        }
    })
}

/// Who is doing something: the person themselves (booking code or offer link) or staff.
pub enum Acting<'a> {
    Registrant,
    Staff(&'a StaffMember),
}

impl Acting<'_> {
    pub fn is_staff(&self) -> bool {
        matches!(self, Acting::Staff(_))
    }

    /// Staff act for callers of their own region only.
    pub fn check_region(&self, region: &str) -> Result<(), ApiError> {
        match self {
            Acting::Registrant => Ok(()),
            Acting::Staff(member) => member.may_act_for_callers(region).map_err(forbidden),
        }
    }

    /// Writes an audit entry when staff act; nothing for the person acting for themselves.
    async fn audit(
        &self,
        tx: &mut PgConnection,
        action: &str,
        subject: Option<Uuid>,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        if let Acting::Staff(member) = self {
            audit(tx, member, action, None, subject, detail).await?;
        }
        Ok(())
    }
}

/// 403 with the refusal's reason.
pub fn forbidden(refusal: StaffRefusal) -> ApiError {
    ApiError::new(ErrorCode::NotAllowed).with_message(format!("Not allowed: {refusal}."))
}

/// Writes one audit entry of `member` in the caller's transaction.
async fn audit(
    tx: &mut PgConnection,
    member: &StaffMember,
    action: &str,
    centre: Option<&str>,
    subject: Option<Uuid>,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    record(
        tx,
        Action {
            staff: member.id,
            action,
            region: &member.region,
            centre,
            subject,
            detail,
        },
    )
    .await
}

/// The text of `field` of registration `owner`, stored sealed; a value that does not open is
/// an internal error (a key missing from the configuration, or a damaged row), never shown.
pub(crate) fn open_field(
    state: &AppState,
    field: Field,
    owner: Uuid,
    sealed: &[u8],
) -> Result<String, ApiError> {
    state
        .personal_data
        .open(field, owner, sealed)
        .map_err(ApiError::internal)
}
