//! The CDR writer: JSON lines `{"<event>": {...}}` in
//! `<OPENVIDU_CDR_PATH>/CDR.<yyyy-MM-dd>_<HH-mm-ss of server start>.log`, a new file each day.

use std::path::PathBuf;

use openvidu_core::wire::webhook::WebhookEvent;
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// The CDR file name for `day` of a server started at `start`.
pub fn file_name(day: OffsetDateTime, start: OffsetDateTime) -> String {
    let d = format_description!("[year]-[month]-[day]");
    let t = format_description!("[hour]-[minute]-[second]");
    format!("CDR.{}_{}.log", day.format(d).unwrap_or_default(), start.format(t).unwrap_or_default())
}

/// Appends every event of `rx` to the CDR until the queue closes.
pub async fn run(dir: PathBuf, mut rx: mpsc::Receiver<WebhookEvent>) {
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        tracing::error!(path = %dir.display(), error = %e, "CDR folder cannot be created; CDR disabled");
        return;
    }
    let start = OffsetDateTime::now_utc();
    let mut current: Option<(String, tokio::fs::File)> = None;
    while let Some(event) = rx.recv().await {
        let name = file_name(OffsetDateTime::now_utc(), start);
        if current.as_ref().map(|(n, _)| n != &name).unwrap_or(true) {
            let path = dir.join(&name);
            match tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await {
                Ok(f) => current = Some((name, f)),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "CDR file cannot be opened");
                    continue;
                }
            }
        }
        if let Some((_, file)) = current.as_mut() {
            let mut line = event.cdr_json().to_string();
            line.push('\n');
            if let Err(e) = file.write_all(line.as_bytes()).await {
                tracing::error!(error = %e, "CDR write failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_follow_openvidu() {
        let start = time::macros::datetime!(2021-09-23 10:20:30 UTC);
        let day = time::macros::datetime!(2021-09-24 01:00:00 UTC);
        assert_eq!(super::file_name(day, start), "CDR.2021-09-24_10-20-30.log");
    }
}
