//! Messages to a registrant, queued in the outbox in the caller's transaction (invariant 3:
//! the state change and its message are one transaction).

use drawbridge_platform::outbox::Notification;
use sqlx::PgConnection;
use uuid::Uuid;

use super::statements;

statements! {
    /// One notification (`$3` kind, `$4` payload, `$2` subject) to the active registrant `$1`
    /// by SMS and, if they gave one, by email, copying their sealed contact in the same
    /// statement.
    TELL =
        "INSERT INTO outbox (id, kind, subject_id, channel, recipient, recipient_of, language, payload)
         SELECT gen_random_uuid(), $3, s.subject, m.channel, m.recipient, s.id, s.language, $4
         FROM (SELECT id, $2::uuid AS subject, phone, email, language FROM registrants
               WHERE id = $1 AND status = 'active' AND phone IS NOT NULL) s,
              LATERAL (VALUES ('sms', s.phone), ('email', s.email)) AS m(channel, recipient)
         WHERE m.recipient IS NOT NULL";
}

/// Queues `notification` about `subject` to the registrant by SMS and, if they gave one, by
/// email; `false` if the registrant is not active (withdrawn: nobody to tell).
pub async fn tell(
    tx: &mut PgConnection,
    registrant: Uuid,
    subject: Uuid,
    notification: &Notification,
) -> Result<bool, sqlx::Error> {
    let queued = sqlx::query(TELL)
        .bind(registrant)
        .bind(subject)
        .bind(notification.kind())
        .bind(sqlx::types::Json(notification))
        .execute(tx)
        .await?;
    Ok(queued.rows_affected() > 0)
}
