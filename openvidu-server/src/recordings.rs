//! Recordings on disk: `<OPENVIDU_RECORDING_PATH>/<recordingId>/.recording.<recordingId>` entity
//! files are the source of truth (spec §3.3), so recordings survive restarts.

use std::path::{Path, PathBuf};

use openvidu_core::id::{RecordingId, SessionId};
use openvidu_core::model::{OutputMode, Recording, RecordingStatus};
use openvidu_core::rules;
use openvidu_core::wire::rest::RecordingJson;

/// Errors of the recording folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingStoreError {
    /// No recording with this id.
    #[error("recording {0} not found")]
    NotFound(RecordingId),
    /// The recording is still starting or started.
    #[error("recording {0} is in progress")]
    InProgress(RecordingId),
    /// File system failure.
    #[error("recording storage: {0}")]
    Io(#[from] std::io::Error),
}

/// The recordings folder.
#[derive(Clone, Debug)]
pub struct RecordingFolder {
    root: PathBuf,
    public_url: String,
}

impl RecordingFolder {
    /// The folder `root`, whose files are served under `<public_url>/openvidu/recordings/`.
    pub fn new(root: PathBuf, public_url: String) -> Self {
        Self { root, public_url: public_url.trim_end_matches('/').to_owned() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entity_path(&self, id: &RecordingId) -> PathBuf {
        self.root.join(id.as_str()).join(format!(".recording.{id}"))
    }

    /// The download URL of a recording's main file.
    pub fn url_of(&self, r: &Recording) -> String {
        let ext = match r.properties.output_mode {
            OutputMode::Individual => "zip",
            _ if r.properties.has_video => "mp4",
            _ => "webm",
        };
        format!("{}/openvidu/recordings/{}/{}.{ext}", self.public_url, r.id, r.properties.name)
    }

    /// `r` with its `url` as REST shows it: set once ready or failed (spec §3.2).
    pub fn with_url(&self, mut r: Recording) -> Recording {
        r.url = matches!(r.status, RecordingStatus::Ready | RecordingStatus::Failed).then(|| self.url_of(&r));
        r
    }

    /// Reads one recording's entity file.
    pub async fn get(&self, id: &RecordingId) -> Result<Recording, RecordingStoreError> {
        let text = match tokio::fs::read(self.entity_path(id)).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RecordingStoreError::NotFound(id.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        let json: RecordingJson = serde_json::from_slice(&text).map_err(|e| {
            tracing::warn!(recording_id = %id, error = %e, "unreadable recording entity file");
            RecordingStoreError::NotFound(id.clone())
        })?;
        Ok(self.with_url(json.into_model()))
    }

    /// Every recording found on disk.
    pub async fn list(&self) -> Result<Vec<Recording>, RecordingStoreError> {
        let mut out = Vec::new();
        let mut dir = match tokio::fs::read_dir(&self.root).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        while let Some(entry) = dir.next_entry().await? {
            let Some(id) = entry.file_name().to_str().and_then(|n| RecordingId::parse(n).ok()) else {
                continue;
            };
            match self.get(&id).await {
                Ok(r) => out.push(r),
                Err(RecordingStoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(out)
    }

    /// Writes a recording's entity file (creating its folder).
    pub async fn save(&self, r: &Recording) -> Result<(), RecordingStoreError> {
        let path = self.entity_path(&r.id);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let json = serde_json::to_vec(&RecordingJson::entity(r)).map_err(std::io::Error::other)?;
        tokio::fs::write(path, json).await?;
        Ok(())
    }

    /// Seals the recordings a previous run of a single master left in progress (it died while
    /// recording): they become `failed`, so they can be listed, downloaded as far as written, and
    /// deleted. Returns their ids. Only for a master that records alone (in-memory store).
    pub async fn seal_interrupted(&self) -> Result<Vec<RecordingId>, RecordingStoreError> {
        let mut sealed = Vec::new();
        for mut r in self.list().await? {
            if matches!(r.status, RecordingStatus::Starting | RecordingStatus::Started | RecordingStatus::Stopped) {
                tracing::warn!(recording_id = %r.id, status = ?r.status, "recording interrupted by a restart: failed");
                r.status = RecordingStatus::Failed;
                self.save(&r).await?;
                sealed.push(r.id);
            }
        }
        Ok(sealed)
    }

    /// Deletes a finished recording's folder.
    pub async fn delete(&self, id: &RecordingId) -> Result<(), RecordingStoreError> {
        let r = self.get(id).await?;
        if matches!(r.status, RecordingStatus::Starting | RecordingStatus::Started) {
            return Err(RecordingStoreError::InProgress(id.clone()));
        }
        tokio::fs::remove_dir_all(self.root.join(id.as_str())).await?;
        Ok(())
    }

    /// Takes the first free recording id of a session and creates its folder, atomically on
    /// this file system (a folder created concurrently makes it try the next id).
    pub async fn allocate(&self, session: &SessionId) -> Result<RecordingId, RecordingStoreError> {
        tokio::fs::create_dir_all(&self.root).await?;
        loop {
            let id = self.next_id(session).await;
            match tokio::fs::create_dir(self.root.join(id.as_str())).await {
                Ok(()) => return Ok(id),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The folder of a recording.
    pub fn folder_of(&self, id: &RecordingId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// The first free recording id of a session, checked against the folders on disk.
    pub async fn next_id(&self, session: &SessionId) -> RecordingId {
        let mut taken = std::collections::HashSet::new();
        if let Ok(mut dir) = tokio::fs::read_dir(&self.root).await {
            while let Ok(Some(entry)) = dir.next_entry().await {
                if let Some(name) = entry.file_name().to_str() {
                    taken.insert(name.to_owned());
                }
            }
        }
        rules::next_recording_id(session, |id| taken.contains(id.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openvidu_core::model::RecordingProperties;

    fn rec(id: &str, status: RecordingStatus, created_at: u64) -> Recording {
        let sid = SessionId::parse("ses_A").unwrap();
        let json = RecordingJson {
            id: RecordingId::parse(id).unwrap(),
            object: "recording".into(),
            name: id.into(),
            output_mode: OutputMode::Composed,
            resolution: None,
            frame_rate: None,
            recording_layout: None,
            custom_layout: None,
            session_id: sid,
            unique_session_id: Some("ses_A_1".into()),
            media_node: None,
            created_at,
            size: 10,
            duration: 1.5,
            url: None,
            has_audio: true,
            has_video: true,
            status,
        };
        let mut r = json.into_model();
        r.properties = RecordingProperties::default();
        r.properties.name = id.into();
        r
    }

    #[tokio::test]
    async fn recordings_live_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let folder = RecordingFolder::new(dir.path().to_owned(), "https://h:4443/".into());
        let sid = SessionId::parse("ses_A").unwrap();
        assert_eq!(folder.next_id(&sid).await.as_str(), "ses_A");
        folder.save(&rec("ses_A", RecordingStatus::Ready, 1)).await.unwrap();
        folder.save(&rec("ses_A-1", RecordingStatus::Started, 2)).await.unwrap();
        assert_eq!(folder.next_id(&sid).await.as_str(), "ses_A-2");

        let list = folder.list().await.unwrap();
        assert_eq!(list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["ses_A-1", "ses_A"]);
        let ready = folder.get(&RecordingId::parse("ses_A").unwrap()).await.unwrap();
        assert_eq!(ready.url.as_deref(), Some("https://h:4443/openvidu/recordings/ses_A/ses_A.mp4"));
        assert!(list[0].url.is_none(), "no url while started");

        let started = RecordingId::parse("ses_A-1").unwrap();
        assert!(matches!(folder.delete(&started).await, Err(RecordingStoreError::InProgress(_))));
        assert_eq!(folder.seal_interrupted().await.unwrap(), std::slice::from_ref(&started));
        assert_eq!(folder.get(&started).await.unwrap().status, RecordingStatus::Failed);
        assert!(folder.seal_interrupted().await.unwrap().is_empty());
        folder.delete(&ready.id).await.unwrap();
        assert!(matches!(folder.get(&ready.id).await, Err(RecordingStoreError::NotFound(_))));
    }
}
