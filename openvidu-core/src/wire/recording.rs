//! Files a recording leaves on disk besides its entity file: the INDIVIDUAL sync file
//! `<name>.json` (spec §3.4), pretty-printed inside the zip in OpenVidu's member order.

use serde::{Deserialize, Serialize};

use crate::id::{ConnectionId, RecordingId, SessionId, StreamId, TypeOfVideo};
use crate::model::Millis;

/// The sync file `<name>.json` of an INDIVIDUAL recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualSyncJson {
    /// Recording start, ms since the epoch.
    pub created_at: Millis,
    /// The recording id.
    pub id: RecordingId,
    /// The recording name (base name of the zip and of this file).
    pub name: String,
    /// The recorded session.
    pub session_id: SessionId,
    /// One entry per WebM file in the zip, in the order the files started.
    pub files: Vec<SyncFileJson>,
}

/// One recorded stream file of [`IndividualSyncJson`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncFileJson {
    /// File name inside the zip, `<streamId>[-n].webm`.
    pub name: String,
    /// The publisher's connection.
    pub connection_id: ConnectionId,
    /// The stream.
    pub stream_id: StreamId,
    /// File size in bytes.
    pub size: u64,
    /// The publisher's client data.
    pub client_data: String,
    /// The publisher's server data.
    pub server_data: String,
    /// The stream has audio and the recording records audio.
    pub has_audio: bool,
    /// The stream has video and the recording records video.
    pub has_video: bool,
    /// The kind of video; only when the file has video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_of_video: Option<TypeOfVideo>,
    /// Milliseconds from `createdAt` to this file's first media.
    pub start_time_offset: i64,
    /// Milliseconds from `createdAt` to this file's last media.
    pub end_time_offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_file_has_openvidus_member_order() {
        let sync = IndividualSyncJson {
            created_at: 1_632_400_000_000,
            id: RecordingId::parse("ses_A").unwrap(),
            name: "ses_A".into(),
            session_id: SessionId::parse("ses_A").unwrap(),
            files: vec![SyncFileJson {
                name: "str_CAM_AbCd_con_X.webm".into(),
                connection_id: ConnectionId::parse("con_X").unwrap(),
                stream_id: StreamId::parse("str_CAM_AbCd_con_X").unwrap(),
                size: 1234,
                client_data: "c".into(),
                server_data: "s".into(),
                has_audio: true,
                has_video: true,
                type_of_video: Some(TypeOfVideo::Camera),
                start_time_offset: 12,
                end_time_offset: 3456,
            }],
        };
        let text = serde_json::to_string(&sync).unwrap();
        assert_eq!(
            text,
            r#"{"createdAt":1632400000000,"id":"ses_A","name":"ses_A","sessionId":"ses_A","files":[{"name":"str_CAM_AbCd_con_X.webm","connectionId":"con_X","streamId":"str_CAM_AbCd_con_X","size":1234,"clientData":"c","serverData":"s","hasAudio":true,"hasVideo":true,"typeOfVideo":"CAMERA","startTimeOffset":12,"endTimeOffset":3456}]}"#
        );
        assert_eq!(serde_json::from_str::<IndividualSyncJson>(&text).unwrap(), sync);
    }
}
