//! Email over SMTP (lettre): a plain-text part and an HTML part, with the check-in QR code
//! embedded as an inline image in confirmations, so it shows even with remote images blocked.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use drawbridge_platform::config::{EmailSettings, EmailTls, ExposeSecret};

use crate::render::{Rendered, QR_CONTENT_ID};
use crate::SendError;

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// `sends_in_flight`: the most emails the consumer sends at once.
    pub fn new(settings: &EmailSettings, sends_in_flight: usize) -> Result<Self, String> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("notifier.email.from: {e}"))?;
        let builder = match settings.tls {
            EmailTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host),
            EmailTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                .map_err(|e| format!("notifier.email.host: {e}"))?,
            EmailTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)
                .map_err(|e| format!("notifier.email.host: {e}"))?,
        };
        // The pool keeps at most `max_size` idle connections and closes any other as soon as
        // its email is sent (default 10). Under a burst every send beyond that would pay for
        // a connection, a greeting and a QUIT, so it keeps as many as can be busy at once;
        // idle ones still close after a minute.
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(Duration::from_secs(settings.timeout_seconds)))
            .pool_config(PoolConfig::new().max_size(sends_in_flight.try_into().unwrap_or(u32::MAX)));
        if !settings.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                settings.username.clone(),
                settings.password.expose_secret().to_owned(),
            ));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            from,
        })
    }

    /// Sends one email; returns its Message-ID.
    pub async fn send(&self, to: &str, message: &Rendered) -> Result<String, SendError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| SendError::Permanent(format!("not an email address ({e})")))?;
        let mut related = MultiPart::related().singlepart(SinglePart::html(message.html.clone()));
        if let Some(png) = &message.qr_png {
            related = related.singlepart(Attachment::new_inline(QR_CONTENT_ID.to_owned()).body(
                png.clone(),
                ContentType::parse("image/png").expect("valid content type"),
            ));
        }
        // lettre adds a Date but no Message-ID by itself; the id is what the delivery record
        // keeps to find a message in the mail server's log.
        let email = Message::builder()
            .message_id(None)
            .from(self.from.clone())
            .to(to)
            .subject(&message.subject)
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(message.text.clone()))
                    .multipart(related),
            )
            .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))?;
        let id = email
            .headers()
            .get_raw("Message-ID")
            .map(str::to_owned)
            .unwrap_or_default();
        match self.transport.send(email).await {
            Ok(_) => Ok(id),
            // 5xx: the server refused this message for good (unknown mailbox, policy).
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("mail server refused: {e}"))),
            Err(e) if not_taken(&e) => Err(SendError::NotSent(format!("mail server unavailable: {e}"))),
            Err(e) => Err(SendError::InDoubt(format!("mail server unavailable: {e}"))),
        }
    }
}

/// Whether a failed send certainly left the message with us: the server answered 4xx (it
/// takes a message only with its 250 after the data), refused the connection, or failed the
/// TLS handshake that comes before anything is sent. A connection lost or timed out during the
/// session may have been lost after the server took the message.
fn not_taken(error: &lettre::transport::smtp::Error) -> bool {
    if error.is_transient() || error.is_tls() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = cause.source();
    }
    false
}
