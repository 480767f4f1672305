//! A streaming WebM (Matroska) muxer.
