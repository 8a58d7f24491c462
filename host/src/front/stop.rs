//! How the host tells its listeners that it is stopping, in two stages, so that nothing a
//! listener accepted is lost: `Draining` from the signal on (readiness fails, and every
//! HTTP/1.1 answer says `Connection: close`, so keep-alive clients reconnect elsewhere
//! during the grace period while everything is still served), then `Stopped` (no more
//! accepting once the connections already waiting in the backlog are taken; each
//! connection closes once what it has read is answered: GOAWAY on HTTP/2).

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Serving,
    Draining,
    Stopped,
}

/// The host's end: moves every listener on to the next stage.
pub struct Stopper(watch::Sender<Stage>);

/// A listener's end.
#[derive(Clone)]
pub struct StopSignal(watch::Receiver<Stage>);

impl Default for Stopper {
    fn default() -> Self {
        Self(watch::Sender::new(Stage::Serving))
    }
}

impl Stopper {
    pub fn signal(&self) -> StopSignal {
        StopSignal(self.0.subscribe())
    }

    /// From the stop signal on: announce the close, keep serving.
    pub fn drain(&self) {
        self.0.send_replace(Stage::Draining);
    }

    /// After the grace period: stop accepting.
    pub fn stop(&self) {
        self.0.send_replace(Stage::Stopped);
    }

    pub fn is_draining(&self) -> bool {
        *self.0.borrow() != Stage::Serving
    }
}

impl StopSignal {
    /// A signal that never comes (a listener a test runs until it is dropped).
    pub fn never() -> Self {
        Stopper::default().signal()
    }

    pub fn is_draining(&self) -> bool {
        *self.0.borrow() != Stage::Serving
    }

    /// Resolves once the listener must stop accepting; never, if its host is gone.
    pub async fn stopped(&mut self) {
        if self.0.wait_for(|s| *s == Stage::Stopped).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
