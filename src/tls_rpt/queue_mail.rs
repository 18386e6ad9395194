//! A report mail into our own queue: committed to the spool like a
//! delivery status notice (`crate::queue::finish`), then handed to the
//! queue manager, which delivers and retries it like any message.

use crate::queue::envelope::{ClientInfo, Envelope, Recipient};
use crate::queue::handle::QueueHandle;
use crate::queue::spool::Spool;

/// Where report mail goes in.
#[derive(Clone)]
pub struct Outbox {
    pub spool: Spool,
    pub queue: QueueHandle,
    /// `[server] hostname`: the HELO the envelope records.
    pub hostname: String,
}

impl Outbox {
    /// Commits `content` from `sender` to `recipient`; its queue id.
    pub async fn enqueue(
        &self,
        sender: &str,
        recipient: &str,
        content: &[u8],
    ) -> Result<String, String> {
        let envelope = Envelope {
            sender: sender.to_string(),
            recipients: vec![Recipient {
                address: recipient.to_string(),
                orcpt: None,
                notify: None,
            }],
            client: ClientInfo {
                helo: self.hostname.clone(),
                ..ClientInfo::default()
            },
            received_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            ..Envelope::default()
        };
        let mut writer = self.spool.create(&envelope);
        writer.write(content).await.map_err(|e| e.to_string())?;
        let id = writer.commit().await.map_err(|e| e.to_string())?;
        self.queue.queued(&id);
        Ok(id)
    }
}
