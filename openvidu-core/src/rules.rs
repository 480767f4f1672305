//! The state rules of OpenVidu as pure functions: who may do what, and which transitions exist.
//! The server calls these; it does not re-decide them.

use crate::error::{RequestError, RuleError};
use crate::id::{RecordingId, SessionId};
use crate::model::{
    ActiveInfo, Connection, ConnectionStatus, MediaMode, OpenViduRole, RecordingProperties, RecordingStatus, Session,
};

/// Makes a pending connection active. A connection goes pending → active once.
pub fn activate(connection: &mut Connection, info: ActiveInfo) -> Result<(), RuleError> {
    if connection.active.is_some() {
        return Err(RuleError::ConnectionNotPending(ConnectionStatus::Active));
    }
    connection.active = Some(info);
    Ok(())
}

/// Whether a role may publish.
pub fn can_publish(role: OpenViduRole) -> bool {
    matches!(role, OpenViduRole::Publisher | OpenViduRole::Moderator)
}

/// Whether a role may force-disconnect or force-unpublish others.
pub fn can_moderate(role: OpenViduRole) -> bool {
    role == OpenViduRole::Moderator
}

/// Checks a role may publish.
pub fn check_publish(role: OpenViduRole) -> Result<(), RuleError> {
    if can_publish(role) { Ok(()) } else { Err(RuleError::NotAllowed { role, action: "publish" }) }
}

/// Checks a role may moderate.
pub fn check_moderate(role: OpenViduRole) -> Result<(), RuleError> {
    if can_moderate(role) { Ok(()) } else { Err(RuleError::NotAllowed { role, action: "moderate" }) }
}

/// Whether a recording may go from `from` to `to` (spec §3.2).
pub fn recording_may_become(from: RecordingStatus, to: RecordingStatus) -> bool {
    use RecordingStatus::*;
    matches!(
        (from, to),
        (Starting, Started)
            | (Starting, Failed)
            | (Started, Stopped)
            | (Started, Failed)
            | (Stopped, Ready)
            | (Stopped, Failed)
    )
}

/// Moves a recording status, refusing transitions spec §3.2 does not draw.
pub fn recording_transition(status: &mut RecordingStatus, to: RecordingStatus) -> Result<(), RuleError> {
    if recording_may_become(*status, to) {
        *status = to;
        Ok(())
    } else {
        Err(RuleError::RecordingTransition { from: *status, to })
    }
}

/// Why a recording cannot start in a session, as the HTTP status of spec §1.4 step 4–5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingStartRefusal {
    /// 409: not ROUTED, or already being recorded.
    Conflict,
    /// 406: nobody to record.
    NotAcceptable,
}

impl RecordingStartRefusal {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::Conflict => 409,
            Self::NotAcceptable => 406,
        }
    }
}

/// Whether a recording may start in `session` with `participants` active connections.
pub fn check_recording_start(session: &Session, participants: usize) -> Result<(), RecordingStartRefusal> {
    if session.properties.media_mode != MediaMode::Routed || session.recording {
        return Err(RecordingStartRefusal::Conflict);
    }
    if !session.active || participants == 0 {
        return Err(RecordingStartRefusal::NotAcceptable);
    }
    Ok(())
}

/// The first free recording id of a session: `<sessionId>`, then `<sessionId>-1`, … (spec §1.2).
pub fn next_recording_id(session: &SessionId, taken: impl Fn(&RecordingId) -> bool) -> RecordingId {
    (0..)
        .map(|n| RecordingId::nth(session, n))
        .find(|id| !taken(id))
        .unwrap_or_else(|| RecordingId::nth(session, u32::MAX))
}

/// True when `s` is a resolution OpenVidu accepts: `WxH`, each 100–1999, no leading zero.
pub fn is_valid_resolution(s: &str) -> bool {
    fn part(p: &str) -> bool {
        (p.len() == 3 || p.len() == 4)
            && p.bytes().all(|b| b.is_ascii_digit())
            && !p.starts_with('0')
            && (p.len() == 3 || p.starts_with('1'))
    }
    matches!(s.split_once('x'), Some((w, h)) if part(w) && part(h))
}

/// The 422 checks of recording start (spec §1.4 step 6) and the name check (step 7).
pub fn validate_recording_properties(p: &RecordingProperties) -> Result<(), RequestError> {
    if !p.has_audio && !p.has_video {
        return Err(RequestError::Unprocessable(
            "Cannot start a recording with both \"hasAudio\" and \"hasVideo\" set to false".into(),
        ));
    }
    if p.output_mode.is_composed() && p.has_video {
        if !is_valid_resolution(&p.resolution) {
            return Err(RequestError::Unprocessable(format!(
                "Wrong \"resolution\" parameter. Acceptable values from 100 to 1999 for both width and height: {}",
                p.resolution
            )));
        }
        if !(1..=120).contains(&p.frame_rate) {
            return Err(RequestError::Unprocessable(format!(
                "Wrong \"frameRate\" parameter. Acceptable values are [1,120]: {}",
                p.frame_rate
            )));
        }
        if p.shm_size < 134_217_728 {
            return Err(RequestError::Unprocessable(format!(
                "Wrong \"shmSize\" parameter. Must be 134217728 (128 MB) minimum: {}",
                p.shm_size
            )));
        }
    }
    if !p.name.is_empty() && !crate::id::is_valid_custom_id(&p.name) {
        return Err(RequestError::BadRequest(format!(
            "Parameter \"name\" is wrong. Must be an alphanumeric string [a-zA-Z0-9_-]: {}",
            p.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
