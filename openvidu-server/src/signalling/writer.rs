//! A socket's writer: drains the socket's outgoing queue into the WebSocket, in as few writes
//! as the frames allow.
//!
//! Every write of a frame is a system call, and on loopback the kernel also runs the reader's
//! side of TCP in it: in a storm of 100 joins, the `participantJoined` each participant gets per
//! joiner were one write each, and writing was a seventh of the server's CPU. So:
//!
//! - what is queued by the time the writer wakes goes out in one write;
//! - a [`Outgoing::Deferrable`] frame waits up to the window for the frames after it, so that
//!   the notifications of a storm share writes. An urgent frame ([`Outgoing::Frame`]) queued in
//!   the meantime ends the wait at once: answers, ICE candidates and streams never wait.

use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::{Sink, SinkExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::participants::Outgoing;

/// How long a [`Outgoing::Deferrable`] frame may wait for others. A storm of 100 joiners sends
/// each participant a `participantJoined` every few milliseconds; 10 ms gathers several per
/// write, and a client cannot tell a participant that arrived 10 ms later.
pub(crate) const DEFERRABLE_WINDOW: Duration = Duration::from_millis(10);

/// Writes what `rx` brings into `sink` until the queue closes, the socket fails, or an
/// [`Outgoing::Close`] (after the frames before it). Frames keep their order. When the queue
/// closes (the socket's reader ended and no one else holds a sender), the socket is closed: the
/// close frame answers a client's, and the connection does not linger half-closed.
pub(crate) async fn write_queue<S>(mut rx: UnboundedReceiver<Outgoing>, mut sink: S, window: Duration)
where
    S: Sink<Message> + Unpin,
{
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Until when the frames fed since the last flush may wait: set by the first deferrable
        // one, ignored once an urgent one is among them.
        let mut deadline: Option<Instant> = None;
        let mut urgent = false;
        loop {
            while let Some(out) = next.take() {
                let text = match out {
                    Outgoing::Frame(f) => {
                        urgent = true;
                        f
                    }
                    Outgoing::Deferrable(f) => {
                        deadline.get_or_insert_with(|| Instant::now() + window);
                        f
                    }
                    Outgoing::Close => {
                        // `send` flushes what was fed before the close frame.
                        let _ = sink.send(Message::Close(None)).await;
                        return;
                    }
                };
                if sink.feed(Message::Text(text.into())).await.is_err() {
                    return;
                }
                next = rx.try_recv().ok();
            }
            match deadline {
                Some(deadline) if !urgent => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(out)) => next = Some(out),
                    // The queue closed, or the window is over: write what was fed.
                    Ok(None) | Err(_) => break,
                },
                _ => break,
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use tokio::sync::mpsc;

    use super::*;

    /// A sink that records the frames of each write (the frames fed between two flushes).
    #[derive(Clone, Default)]
    struct Writes {
        fed: Arc<Mutex<Vec<String>>>,
        writes: Arc<Mutex<Vec<Vec<String>>>>,
    }

    impl Writes {
        fn writes(&self) -> Vec<Vec<String>> {
            self.writes.lock().unwrap().clone()
        }

        async fn wait_for(&self, count: usize) -> Vec<Vec<String>> {
            tokio::time::timeout(Duration::from_secs(5), async {
                while self.writes().len() < count {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .expect("the writes in time");
            self.writes()
        }
    }

    impl Sink<Message> for Writes {
        type Error = std::convert::Infallible;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            let text = match item {
                Message::Text(t) => t.as_str().to_owned(),
                Message::Close(_) => "close".to_owned(),
                _ => "other".to_owned(),
            };
            self.fed.lock().unwrap().push(text);
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            let fed = std::mem::take(&mut *self.fed.lock().unwrap());
            if !fed.is_empty() {
                self.writes.lock().unwrap().push(fed);
            }
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.poll_flush(cx)
        }
    }

    fn frame(s: &str) -> Outgoing {
        Outgoing::Frame(s.to_owned())
    }

    fn deferrable(s: &str) -> Outgoing {
        Outgoing::Deferrable(s.to_owned())
    }

    /// A writer with this window on a recording sink: its queue, its sink, its task.
    fn start(window: Duration) -> (mpsc::UnboundedSender<Outgoing>, Writes, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Writes::default();
        let writer = tokio::spawn(write_queue(rx, sink.clone(), window));
        (tx, sink, writer)
    }

    #[tokio::test]
    async fn what_is_queued_goes_out_in_one_write_in_order() {
        let (tx, rx) = mpsc::unbounded_channel();
        for out in [frame("a"), deferrable("b"), frame("c")] {
            tx.send(out).unwrap();
        }
        let sink = Writes::default();
        let writer = tokio::spawn(write_queue(rx, sink.clone(), Duration::from_secs(60)));
        assert_eq!(sink.wait_for(1).await, vec![vec!["a", "b", "c"]]);
        drop(tx);
        writer.await.unwrap();
        assert_eq!(sink.writes().len(), 1);
    }

    #[tokio::test]
    async fn an_urgent_frame_is_written_at_once() {
        let (tx, sink, _writer) = start(Duration::from_secs(60));
        tx.send(frame("answer")).unwrap();
        assert_eq!(sink.wait_for(1).await, vec![vec!["answer"]]);
    }

    #[tokio::test]
    async fn deferrable_frames_share_a_write_and_an_urgent_one_ends_the_wait() {
        // A window far longer than the test's wait: only the urgent frame can end it.
        let (tx, sink, _writer) = start(Duration::from_secs(60));
        tx.send(deferrable("joined 1")).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(deferrable("joined 2")).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(sink.writes().is_empty(), "deferrable frames wait: {:?}", sink.writes());
        tx.send(frame("candidate")).unwrap();
        assert_eq!(sink.wait_for(1).await, vec![vec!["joined 1", "joined 2", "candidate"]]);
    }

    #[tokio::test]
    async fn a_deferrable_frame_alone_goes_out_when_the_window_ends() {
        let (tx, sink, _writer) = start(Duration::from_millis(30));
        tx.send(deferrable("joined")).unwrap();
        assert_eq!(sink.wait_for(1).await, vec![vec!["joined"]]);
        // The next window starts with the next deferrable frame.
        tx.send(deferrable("left")).unwrap();
        assert_eq!(sink.wait_for(2).await, vec![vec!["joined"], vec!["left"]]);
    }

    #[tokio::test]
    async fn close_writes_the_frames_before_it_then_stops() {
        let (tx, rx) = mpsc::unbounded_channel();
        for out in [deferrable("left"), Outgoing::Close, frame("after")] {
            tx.send(out).unwrap();
        }
        let sink = Writes::default();
        write_queue(rx, sink.clone(), Duration::from_secs(60)).await;
        assert_eq!(sink.writes(), vec![vec!["left", "close"]]);
    }

    #[tokio::test]
    async fn a_closed_queue_writes_the_deferred_frames_without_waiting() {
        let (tx, sink, writer) = start(Duration::from_secs(60));
        tx.send(deferrable("joined")).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), writer).await.expect("the writer ends").unwrap();
        assert_eq!(sink.writes(), vec![vec!["joined"]]);
    }
}
