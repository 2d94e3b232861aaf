//! The local sink: messages are written to the log and appended to a file as JSON lines, so
//! the demo and development need no provider account.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::json;

use crate::SendError;

pub struct FileSink {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl FileSink {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileSink {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// Appends one message; the returned id is its line's identity for the delivery record.
    pub fn deliver(
        &self,
        channel: &str,
        to: &str,
        subject: Option<&str>,
        body: &str,
    ) -> Result<String, SendError> {
        let id = format!("sink-{}", uuid::Uuid::new_v4());
        let line = json!({
            "id": id,
            "at": chrono::Utc::now(),
            "channel": channel,
            "to": to,
            "subject": subject,
            "body": body,
        });
        let mut file = self.file.lock().expect("poisoned");
        writeln!(file, "{line}")
            .map_err(|e| SendError::NotSent(format!("cannot write {}: {e}", self.path.display())))?;
        tracing::info!(%channel, sink = %self.path.display(), "message written to the local sink");
        Ok(id)
    }
}
