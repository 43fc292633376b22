//! Constructors for the decisions plugins make most, so a plugin spells out
//! only what differs from the router's defaults.

use crate::{
    Collect, Decision, Destination, Diversion, DiversionReason, FeatureResult, OnFailure, Prompt,
    Rejection, RingMode, Route, Target,
};

impl Target {
    /// Rings `destination` at once, for the router's default ring time.
    pub fn now(destination: Destination) -> Target {
        Target {
            destination,
            delay_ms: 0,
            ring_ms: 0,
        }
    }

    /// The same target, ringing for `ms` milliseconds.
    pub fn ringing_for(mut self, ms: u32) -> Target {
        self.ring_ms = ms;
        self
    }

    /// The same target, starting `ms` milliseconds after the others.
    pub fn after(mut self, ms: u32) -> Target {
        self.delay_ms = ms;
        self
    }
}

impl Route {
    /// Rings one destination with the router's defaults: no delay, default
    /// ring time, caller ID unchanged, the failure point asked again when
    /// it is not answered.
    pub fn to(destination: Destination) -> Route {
        Route::ringing(vec![Target::now(destination)])
    }

    /// Rings these targets together, with the router's defaults otherwise.
    pub fn ringing(targets: Vec<Target>) -> Route {
        Route {
            targets,
            mode: RingMode::Parallel,
            total_ring_ms: 0,
            caller_id: None,
            caller_name: None,
            on_failure: OnFailure::AskAgain,
            reason: None,
            diversion: None,
        }
    }

    /// Rings the targets one after the other instead.
    pub fn in_turn(mut self) -> Route {
        self.mode = RingMode::Sequential;
        self
    }

    /// Gives up after `ms` milliseconds in all.
    pub fn for_at_most(mut self, ms: u32) -> Route {
        self.total_ring_ms = ms;
        self
    }

    /// Why, for the call's history record (never shown on a phone).
    pub fn because(mut self, reason: impl Into<String>) -> Route {
        self.reason = Some(reason.into());
        self
    }

    /// Marks the route as a diversion away from extension `from`: the
    /// router adds `Diversion` and `History-Info` to the new leg.
    pub fn diverted_from(mut self, from: impl Into<String>, reason: DiversionReason) -> Route {
        self.diversion = Some(Diversion {
            from: from.into(),
            reason,
        });
        self
    }

    /// Presents this caller name (and keeps the caller's number).
    pub fn showing_name(mut self, name: impl Into<String>) -> Route {
        self.caller_name = Some(name.into());
        self
    }

    /// Gives the caller the failure instead of asking the failure point
    /// again when nobody answers.
    pub fn then_drop(mut self) -> Route {
        self.on_failure = OnFailure::Drop;
        self
    }
}

impl From<Route> for Decision {
    fn from(route: Route) -> Decision {
        Decision::Route(route)
    }
}

impl Decision {
    /// Refuses the call with a final status (400-699) and reason phrase.
    pub fn reject(status: u16, reason: impl Into<String>) -> Decision {
        Decision::Reject(Rejection {
            status,
            reason: reason.into(),
        })
    }

    /// Answers a feature code: `success` and a short text for the phone.
    pub fn feature(success: bool, message: impl Into<String>) -> Decision {
        Decision::Feature(FeatureResult {
            success,
            message: message.into(),
            announce: Vec::new(),
        })
    }

    /// Answers a feature code and says `announce` to the caller before the
    /// router hangs up (in a voice call, or when the phone offered audio).
    pub fn feature_saying(
        success: bool,
        message: impl Into<String>,
        announce: Vec<Prompt>,
    ) -> Decision {
        Decision::Feature(FeatureResult {
            success,
            message: message.into(),
            announce,
        })
    }
}

impl Collect {
    /// Says `prompts`, then waits up to 10 s per digit for at most
    /// `max_digits` digits or `#`; `context` comes back with the answer at
    /// the `collected` point.
    pub fn digits(prompts: Vec<Prompt>, max_digits: u8, context: impl Into<String>) -> Collect {
        Collect {
            prompts,
            max_digits,
            hash_ends: true,
            timeout_ms: 0,
            context: context.into(),
        }
    }

    /// The same question, waiting `ms` milliseconds per digit (1000-60000).
    pub fn waiting(mut self, ms: u32) -> Collect {
        self.timeout_ms = ms;
        self
    }

    /// The question as a decision.
    pub fn ask(self) -> Decision {
        Decision::Collect(self)
    }
}

impl Prompt {
    /// One of the router's (or the tenant's) recordings by name.
    pub fn say(name: &str) -> Prompt {
        Prompt::Recording(name.to_owned())
    }

    /// Digits read out one by one.
    pub fn read(digits: &str) -> Prompt {
        Prompt::Digits(digits.to_owned())
    }
}
