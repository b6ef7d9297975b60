//! E-mail delivery of verification codes through a real SMTP relay (`[notify.smtp]`), with lettre.
//!
//! Messages are built with lettre's typed builder, which validates addresses and encodes header values, so no user
//! text (an account name in a subject, say) can inject headers. Delivery happens after the change is committed;
//! a failed delivery is logged and never undoes the change (the code is in the inbox as well).

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};

use crate::settings::SmtpSettings;

/// Sends mail through the configured relay.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> anyhow::Result<Mailer> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("[notify.smtp].from {:?} is not an address: {e}", settings.from))?;
        // A local relay on a trusted network: plain SMTP, as MTAs on loopback expect. TLS relays are a later option.
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str()).port(settings.port).build();
        Ok(Mailer { transport, from })
    }

    /// Sends one message; failures are logged, never returned to the API caller.
    pub async fn send(&self, to: String, subject: String, body: String) {
        let to_box: Mailbox = match to.parse() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%to, error = %e, "cannot mail: bad recipient address");
                return;
            }
        };
        let message = Message::builder()
            .message_id(None)
            .from(self.from.clone())
            .to(to_box)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body);
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build mail");
                return;
            }
        };
        if let Err(e) = self.transport.send(message).await {
            tracing::warn!(%to, error = %e, "mail delivery failed (the code is in the inbox too)");
        }
    }
}
