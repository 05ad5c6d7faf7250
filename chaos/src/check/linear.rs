//! Linearizability, config by config: is there one order of a config's operations, agreeing
//! with real time (an operation that completed before another was invoked comes first), in
//! which every answer is the one a single copy of the config would have given? [`order`] and
//! [`reads`] check consequences of that, one pair of operations at a time; this checker
//! searches for the order itself, so it also finds what no pair shows, such as two reads that
//! see two concurrent writes in opposite orders.
//!
//! # The model
//!
//! Configs are independent and linearizability is compositional (a history is linearizable
//! iff each config's part of it is), so each config is checked on its own. A config is a
//! [`ConfigState`]: how many versions it has (numbered from 1 and never deleted: retention is
//! off in a run), the version served as the stable release, and its revision, the log index of
//! its last change.
//!
//! - An acknowledged write got version `count + 1`, and a revision not before the config's; with
//!   `publish`, its version is served too.
//! - An acknowledged release change served an existing version (the one it asked for, with
//!   that version's content), at a revision not before the config's.
//! - A linearizable read saw the served version, with the content its write gave it, at
//!   exactly the config's revision (every change moves the revision, a draft version too;
//!   changes batched into one Raft entry share its index, so revisions never go back but
//!   may stay).
//!
//! What the model is given:
//!
//! - Refused operations (`fail`) had no effect: they are left out.
//! - Default and `min_revision` reads may be served by a lagging node and are not
//!   linearizable by contract: they are left to [`reads`] and [`order`].
//! - An operation with an unknown outcome may take effect at any point after its invocation,
//!   or never: it has no deadline. An unknown write took effect iff its content is in the final
//!   state, as the version that holds it there; its revision is not known, only that it is
//!   after the config's. An unknown release change leaves no trace in the final state, so it is
//!   optional: placed anywhere after its invocation, or nowhere.
//! - A write is known by its content (every write of a run has one of its own): attempts with
//!   one content that agree on what it did are one write, pending from the first attempt's
//!   invocation to the first acknowledgement. That is an idempotent retry recorded as a second
//!   operation, and the server answers it with the first outcome.
//! - `If-Match` is not modelled: an acknowledged release change took effect, a refused one did
//!   not.
//! - A config starts with no version, nothing served and an unknown revision, unless
//!   [`check_config`] is given another state. So the history must hold every change of the run,
//!   the harness's first publish included, as [`writes`] also assumes, and no other kind of
//!   change (a metadata update moves the revision too).
//!
//! Left to the other checkers: whether acknowledged writes survive in the final state and
//! nothing is applied twice ([`writes`]), the reads that are not linearizable by contract
//! ([`reads`], [`order`]), and watches ([`watch`]).
//!
//! # The search
//!
//! Wing and Gong's algorithm with Lowe's memoization, as in Porcupine. The invocations and
//! completions are put in time order (equal times count as overlapping, the lenient reading).
//! The search takes the first pending operation that can take effect in the current state, and
//! backtracks when it reaches the completion of an operation that has not taken effect. It
//! remembers every (set of operations taken, state) pair it reached, so no branch is explored
//! twice. Three refinements, each sound on its own:
//!
//! - An answer that contradicts what a version holds fits no order: it is reported without a
//!   search.
//! - An operation that changes nothing (a read at the current revision) is taken as soon as it
//!   can be, and nothing else is tried in its place.
//! - Optional operations are tried after the required ones, and a pair reached with fewer of
//!   them taken covers the same pair with more taken (what could be left out still can be).
//!   Without this, unknown release changes, pending to the end, would multiply the pairs.
//!
//! The search is exponential in the worst case (many operations pending at once, above all
//! unknown ones, which stay pending to the end). So each config gets a time budget and a memory
//! bound, and a config that exhausts either is [`Verdict::Unknown`]: reported by
//! [`check_configs`], not an anomaly. A config that is not linearizable comes with the longest
//! linearizable prefix found and the operation that could not come next, and why.
//!
//! [`order`]: super::order
//! [`reads`]: super::reads
//! [`watch`]: super::watch
//! [`writes`]: super::writes

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use super::Anomaly;
use crate::history::{Call, ConfigKey, FinalVersion, Operation, Outcome, ReadMode};

const CHECKER: &str = "linearizable";

/// A time to give each config's search when nothing else is known (a run gives its own).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(10);

/// The memory one config's search may spend on the states it remembers. The time budget alone
/// would not bound it: the search can remember millions of states a second.
const MEMO_LIMIT_BYTES: usize = 256 << 20;

/// Search steps between two looks at the clock.
const STEPS_PER_CLOCK_READ: u64 = 1024;

/// A config in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConfigState {
    /// Versions `1..=count` exist.
    pub count: u64,
    /// The version served as the stable release.
    pub served: Option<u64>,
    /// The revision of the config's last change.
    pub revision: Revision,
}

/// What is known of a config's revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Revision {
    /// Nothing: no change is known yet.
    #[default]
    Unknown,
    /// An acknowledged change or a read said which it is.
    Exact(u64),
    /// A lower bound: changes with unknown outcomes took effect since the last known revision.
    AtLeast(u64),
}

impl Revision {
    /// Whether a change can get `revision` now: revisions never go back. They may stay: a
    /// revision is a Raft log index, and changes batched into one entry share it (that an
    /// operation begun after another completed gets a later one is [`order`]'s check).
    ///
    /// [`order`]: super::order
    fn admits_change(self, revision: u64) -> bool {
        match self {
            Revision::Unknown => true,
            Revision::Exact(current) => revision >= current,
            Revision::AtLeast(least) => revision >= least,
        }
    }

    /// Whether a read can be served at `revision` now: the last change's.
    fn admits_read(self, revision: u64) -> bool {
        match self {
            Revision::Unknown => true,
            Revision::Exact(current) => revision == current,
            Revision::AtLeast(least) => revision >= least,
        }
    }

    /// After a change whose revision is not known: a later one, if there is one.
    fn after_unknown_change(self) -> Option<Self> {
        match self {
            Revision::Unknown => Some(Revision::AtLeast(0)),
            Revision::Exact(r) | Revision::AtLeast(r) => Some(Revision::AtLeast(r)),
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revision::Unknown => write!(f, "unknown"),
            Revision::Exact(r) => write!(f, "{r}"),
            Revision::AtLeast(r) => write!(f, "at least {r}"),
        }
    }
}

/// One config's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigVerdict {
    pub config: ConfigKey,
    /// The operations the model judged: writes that took effect (the attempts of a retried
    /// write counted once), release changes that took or may have taken effect, and
    /// linearizable reads that were answered.
    pub ops: usize,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order works. What the search got furthest with:
    NotLinearizable {
        /// The longest linearizable prefix found: operation ids, in their order.
        prefix: Vec<u64>,
        /// An operation that cannot come next although it had to take effect by then (after an
        /// empty prefix: one that cannot come first, or anywhere).
        unplaced: u64,
        /// What that operation is and why it cannot come next.
        why: String,
    },
    /// Undecided: the search ran out of budget, or the history cannot be read.
    Unknown {
        reason: String,
    },
}

/// The anomalies: one per config that is not linearizable. Use [`check_configs`] to also see
/// the configs the search could not decide.
pub fn check(
    history: &[Operation],
    finals: &BTreeMap<ConfigKey, Vec<FinalVersion>>,
    budget: Duration,
) -> Vec<Anomaly> {
    anomalies(&check_configs(history, finals, budget))
}

/// One anomaly per verdict that is `NotLinearizable`.
pub fn anomalies(verdicts: &[ConfigVerdict]) -> Vec<Anomaly> {
    verdicts
        .iter()
        .filter_map(|judged| {
            let Verdict::NotLinearizable {
                prefix,
                unplaced,
                why,
            } = &judged.verdict
            else {
                return None;
            };
            Some(Anomaly {
                checker: CHECKER,
                op: Some(*unplaced),
                message: explain(judged.ops, prefix, *unplaced, why),
                config: judged.config.clone(),
            })
        })
        .collect()
}

impl Verdict {
    /// One line for summaries: `linearizable`, `NOT linearizable` or `unknown (why)`.
    pub fn label(&self) -> String {
        match self {
            Verdict::Linearizable => "linearizable".to_owned(),
            Verdict::NotLinearizable { .. } => "NOT linearizable".to_owned(),
            Verdict::Unknown { reason } => format!("unknown ({reason})"),
        }
    }
}

/// Every config of the history, in key order, each searched within `budget`, each starting
/// with no version.
pub fn check_configs(
    history: &[Operation],
    finals: &BTreeMap<ConfigKey, Vec<FinalVersion>>,
    budget: Duration,
) -> Vec<ConfigVerdict> {
    let mut by_config: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in history {
        by_config.entry(op.config()).or_default().push(op);
    }
    by_config
        .into_iter()
        .map(|(config, ops)| {
            let versions = finals.get(config).map_or(&[][..], Vec::as_slice);
            judge(config, &ops, versions, ConfigState::default(), budget)
        })
        .collect()
}

/// One config, starting from `initial` (for a history that begins after the config had
/// versions); `finals` are that config's versions after the run.
pub fn check_config(
    history: &[Operation],
    config: &str,
    finals: &[FinalVersion],
    initial: ConfigState,
    budget: Duration,
) -> ConfigVerdict {
    let ops: Vec<&Operation> = history.iter().filter(|op| op.config() == config).collect();
    judge(config, &ops, finals, initial, budget)
}

fn judge(
    config: &str,
    ops: &[&Operation],
    finals: &[FinalVersion],
    initial: ConfigState,
    budget: Duration,
) -> ConfigVerdict {
    let (ops, verdict) = match model(ops, finals) {
        Ok(model) => (model.len(), decide(&model, initial, budget)),
        Err(reason) => (0, Verdict::Unknown { reason }),
    };
    ConfigVerdict {
        config: config.to_owned(),
        ops,
        verdict,
    }
}

fn explain(ops: usize, prefix: &[u64], unplaced: u64, why: &str) -> String {
    const SHOWN: usize = 10;
    if prefix.is_empty() {
        return format!(
            "no order of its {ops} operations works: operation {unplaced} cannot take effect \
             ({why})"
        );
    }
    let shown = &prefix[prefix.len().saturating_sub(SHOWN)..];
    let ids = shown
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let elided = if shown.len() < prefix.len() {
        "…, "
    } else {
        ""
    };
    format!(
        "no order of its {ops} operations works: the longest linearizable prefix found has {} \
         ({elided}{ids}), and operation {unplaced} cannot come next ({why})",
        prefix.len()
    )
}

/// What an operation does to the model.
#[derive(Debug, Clone, Copy)]
enum Effect<'a> {
    /// Creates `version`, holding `content`; serves it too when `publish`.
    Write {
        version: u64,
        content: &'a str,
        publish: bool,
        /// `None`: the outcome is unknown.
        revision: Option<u64>,
    },
    /// Serves `version`, which must exist.
    Release {
        version: u64,
        /// `None`: the outcome is unknown.
        revision: Option<u64>,
    },
    /// Sees `version` served at `revision`.
    Read { version: u64, revision: u64 },
}

/// Why an operation cannot take effect in a state.
#[derive(Debug, Clone, Copy)]
enum Refusal<'a> {
    NotNextVersion {
        version: u64,
        count: u64,
    },
    NoSuchVersion {
        version: u64,
        count: u64,
    },
    NotServed {
        version: u64,
        served: Option<u64>,
    },
    ChangeNotLater {
        revision: u64,
        current: Revision,
    },
    NoLaterRevision {
        current: Revision,
    },
    ReadNotCurrent {
        revision: u64,
        current: Revision,
    },
    OtherContent {
        version: u64,
        seen: &'a str,
        holds: &'a str,
    },
    OtherVersionServed {
        asked: u64,
        answered: u64,
    },
}

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::NotNextVersion { version, count } => {
                write!(
                    f,
                    "version {version} is not the next one (the config has {count})"
                )
            }
            Refusal::NoSuchVersion { version, count } => {
                write!(f, "the config has no version {version} (it has {count})")
            }
            Refusal::NotServed { version, served } => match served {
                Some(served) => write!(f, "version {version} is not served ({served} is)"),
                None => write!(f, "version {version} is not served (nothing is)"),
            },
            Refusal::ChangeNotLater { revision, current } => write!(
                f,
                "revision {revision} is before the config's revision ({current})"
            ),
            Refusal::NoLaterRevision { current } => {
                write!(f, "no revision is after the config's revision ({current})")
            }
            Refusal::ReadNotCurrent { revision, current } => write!(
                f,
                "revision {revision} is not the config's revision ({current})"
            ),
            Refusal::OtherContent {
                version,
                seen,
                holds,
            } => write!(
                f,
                "it answered {seen} as version {version}, which holds {holds}"
            ),
            Refusal::OtherVersionServed { asked, answered } => write!(
                f,
                "asked to serve version {asked}, it answered that version {answered} is served"
            ),
        }
    }
}

impl ConfigState {
    fn apply(self, effect: Effect<'_>) -> Result<ConfigState, Refusal<'static>> {
        let count = self.count;
        match effect {
            Effect::Write {
                version,
                publish,
                revision,
                ..
            } => {
                if version.checked_sub(1) != Some(count) {
                    return Err(Refusal::NotNextVersion { version, count });
                }
                Ok(ConfigState {
                    count: version,
                    served: if publish { Some(version) } else { self.served },
                    revision: self.change(revision)?,
                })
            }
            Effect::Release { version, revision } => {
                if !(1..=count).contains(&version) {
                    return Err(Refusal::NoSuchVersion { version, count });
                }
                Ok(ConfigState {
                    served: Some(version),
                    revision: self.change(revision)?,
                    ..self
                })
            }
            Effect::Read { version, revision } => {
                if self.served != Some(version) {
                    return Err(Refusal::NotServed {
                        version,
                        served: self.served,
                    });
                }
                if !self.revision.admits_read(revision) {
                    return Err(Refusal::ReadNotCurrent {
                        revision,
                        current: self.revision,
                    });
                }
                Ok(ConfigState {
                    revision: Revision::Exact(revision),
                    ..self
                })
            }
        }
    }

    /// The revision after a change that got `revision` (`None`: not known).
    fn change(self, revision: Option<u64>) -> Result<Revision, Refusal<'static>> {
        match revision {
            None => self
                .revision
                .after_unknown_change()
                .ok_or(Refusal::NoLaterRevision {
                    current: self.revision,
                }),
            Some(r) if self.revision.admits_change(r) => Ok(Revision::Exact(r)),
            Some(r) => Err(Refusal::ChangeNotLater {
                revision: r,
                current: self.revision,
            }),
        }
    }
}

/// An operation as the model sees it.
#[derive(Debug)]
struct ModelOp<'a> {
    /// The history operation it stands for (of a retried write, the acknowledged attempt).
    id: u64,
    invoked: u64,
    /// `None`: no deadline, it may take effect at any point after its invocation.
    completed: Option<u64>,
    /// It may also never take effect.
    optional: bool,
    effect: Effect<'a>,
    /// Its answer contradicts what a version holds: it can take effect nowhere.
    contradiction: Option<Refusal<'a>>,
}

impl<'a> ModelOp<'a> {
    fn apply(&self, state: ConfigState) -> Result<ConfigState, Refusal<'a>> {
        match self.contradiction {
            Some(refusal) => Err(refusal),
            None => state.apply(self.effect),
        }
    }
}

impl fmt::Display for ModelOp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, version, revision) = match self.effect {
            Effect::Write {
                version,
                publish,
                revision,
                ..
            } => (
                if publish { "published write" } else { "write" },
                version,
                revision,
            ),
            Effect::Release { version, revision } => ("release", version, revision),
            Effect::Read { version, revision } => ("read", version, Some(revision)),
        };
        match revision {
            Some(revision) => write!(f, "{what} of version {version} at revision {revision}"),
            None => write!(f, "{what} of version {version}, outcome unknown"),
        }
    }
}

/// A write attempt that took effect.
struct Attempt<'a> {
    op: &'a Operation,
    content: &'a str,
    publish: bool,
    version: u64,
    /// Its revision, when acknowledged.
    revision: Option<u64>,
}

/// The config's operations the model judges, or why the history cannot be read.
fn model<'a>(
    ops: &[&'a Operation],
    finals: &'a [FinalVersion],
) -> Result<Vec<ModelOp<'a>>, String> {
    for op in ops {
        if let (Outcome::Ok { .. }, Some(completed)) = (&op.outcome, op.completed_ns)
            && completed < op.invoked_ns
        {
            return Err(format!(
                "operation {} completed at {completed} ns, before it was invoked at {} ns",
                op.id, op.invoked_ns
            ));
        }
    }

    let mut model = writes(ops, finals);
    // Which content each version holds: as the write that made it says, else as the final
    // state says (a version made before the history began). Two writes claiming one version
    // cannot both take effect, so whichever is recorded here, the search rejects the other.
    let mut contents: BTreeMap<u64, &str> = BTreeMap::new();
    for op in &model {
        if let Effect::Write {
            version, content, ..
        } = op.effect
        {
            contents.entry(version).or_insert(content);
        }
    }
    for v in finals {
        contents.entry(v.version).or_insert(&v.content_hash);
    }
    let other_content = |version: u64, seen: &'a str| match contents.get(&version) {
        Some(&holds) if holds != seen => Some(Refusal::OtherContent {
            version,
            seen,
            holds,
        }),
        _ => None,
    };

    for op in ops {
        let judged = |effect, contradiction| ModelOp {
            id: op.id,
            invoked: op.invoked_ns,
            completed: op.completed_ns,
            optional: false,
            effect,
            contradiction,
        };
        match (&op.call, &op.outcome) {
            (
                Call::Release { version, .. },
                Outcome::Ok {
                    revision,
                    version: answered,
                    content_hash,
                },
            ) => {
                let contradiction = if answered != version {
                    Some(Refusal::OtherVersionServed {
                        asked: *version,
                        answered: *answered,
                    })
                } else if content_hash.is_empty() {
                    // `PUT releases` answers with the rules, not the content: the client
                    // may not know it.
                    None
                } else {
                    other_content(*version, content_hash)
                };
                model.push(judged(
                    Effect::Release {
                        version: *version,
                        revision: Some(*revision),
                    },
                    contradiction,
                ));
            }
            (Call::Release { version, .. }, Outcome::Unknown { .. }) => model.push(ModelOp {
                completed: None,
                optional: true,
                ..judged(
                    Effect::Release {
                        version: *version,
                        revision: None,
                    },
                    None,
                )
            }),
            (
                Call::Read {
                    mode: ReadMode::Linearizable,
                    ..
                },
                Outcome::Ok {
                    revision,
                    version,
                    content_hash,
                },
            ) => model.push(judged(
                Effect::Read {
                    version: *version,
                    revision: *revision,
                },
                other_content(*version, content_hash),
            )),
            _ => {}
        }
    }
    Ok(model)
}

/// The writes that took effect: acknowledged ones, and unknown ones whose content is in the
/// final state. Attempts with one content are one write when they agree on what it did; when
/// they do not, each is a write of its own (a content applied twice is for `writes` to report;
/// two claims on one version fit no order).
fn writes<'a>(ops: &[&'a Operation], finals: &'a [FinalVersion]) -> Vec<ModelOp<'a>> {
    let mut final_version: HashMap<&str, u64> = HashMap::new();
    for v in finals {
        final_version.entry(&v.content_hash).or_insert(v.version);
    }
    let mut by_content: BTreeMap<&str, Vec<Attempt>> = BTreeMap::new();
    for op in ops {
        let Call::Write {
            content_hash,
            publish,
            ..
        } = &op.call
        else {
            continue;
        };
        let (version, revision) = match &op.outcome {
            Outcome::Ok {
                revision, version, ..
            } => (*version, Some(*revision)),
            Outcome::Unknown { .. } => match final_version.get(content_hash.as_str()) {
                Some(version) => (*version, None),
                None => continue,
            },
            Outcome::Fail { .. } => continue,
        };
        by_content.entry(content_hash).or_default().push(Attempt {
            op,
            content: content_hash,
            publish: *publish,
            version,
            revision,
        });
    }

    let mut out = Vec::new();
    for attempts in by_content.into_values() {
        let Some(first) = attempts.first() else {
            continue;
        };
        let acknowledged = || attempts.iter().filter(|a| a.revision.is_some());
        let revision = acknowledged().find_map(|a| a.revision);
        let agree = attempts.iter().all(|a| {
            a.version == first.version
                && a.publish == first.publish
                && a.revision.is_none_or(|r| Some(r) == revision)
        });
        if agree {
            out.push(ModelOp {
                id: acknowledged().next().unwrap_or(first).op.id,
                invoked: attempts
                    .iter()
                    .map(|a| a.op.invoked_ns)
                    .min()
                    .unwrap_or(first.op.invoked_ns),
                // An acknowledgement without a time sets no deadline.
                completed: acknowledged().filter_map(|a| a.op.completed_ns).min(),
                optional: false,
                effect: write_effect(first, revision),
                contradiction: None,
            });
        } else {
            out.extend(attempts.iter().map(|a| ModelOp {
                id: a.op.id,
                invoked: a.op.invoked_ns,
                completed: a.revision.and(a.op.completed_ns),
                optional: false,
                effect: write_effect(a, a.revision),
                contradiction: None,
            }));
        }
    }
    out
}

fn write_effect<'a>(attempt: &Attempt<'a>, revision: Option<u64>) -> Effect<'a> {
    Effect::Write {
        version: attempt.version,
        content: attempt.content,
        publish: attempt.publish,
        revision,
    }
}

fn decide(model: &[ModelOp<'_>], initial: ConfigState, budget: Duration) -> Verdict {
    // An answer that contradicts what a version holds fits no order: say so without a search,
    // which could run out of budget before proving it.
    if let Some((op, refusal)) = model
        .iter()
        .filter(|op| !op.optional)
        .find_map(|op| op.contradiction.map(|refusal| (op, refusal)))
    {
        return Verdict::NotLinearizable {
            prefix: Vec::new(),
            unplaced: op.id,
            why: format!("{op}: {refusal}"),
        };
    }
    search(model, initial, budget)
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Invoke(usize),
    Complete(usize),
    /// The list's two ends.
    End,
}

const HEAD: usize = 0;

/// The operations' invocations and completions in time order, as a doubly linked list: an
/// operation's two events are taken out when it takes effect, and put back in when the search
/// undoes that.
#[derive(Debug)]
struct Timeline {
    events: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Each operation's invocation and completion, as indices in `events`.
    of_op: Vec<(usize, usize)>,
}

impl Timeline {
    fn new(ops: &[ModelOp<'_>]) -> Self {
        // An invocation comes before a completion at the same time: the operations overlap.
        let mut timed: Vec<((u64, bool), Event)> = ops
            .iter()
            .enumerate()
            .flat_map(|(i, op)| {
                [
                    ((op.invoked, false), Event::Invoke(i)),
                    ((op.completed.unwrap_or(u64::MAX), true), Event::Complete(i)),
                ]
            })
            .collect();
        timed.sort_by_key(|(at, _)| *at);
        let mut events = Vec::with_capacity(timed.len() + 2);
        events.push(Event::End);
        events.extend(timed.into_iter().map(|(_, event)| event));
        events.push(Event::End);
        let mut of_op = vec![(HEAD, HEAD); ops.len()];
        for (i, event) in events.iter().enumerate() {
            match *event {
                Event::Invoke(op) => of_op[op].0 = i,
                Event::Complete(op) => of_op[op].1 = i,
                Event::End => {}
            }
        }
        let last = events.len() - 1;
        Timeline {
            next: (0..events.len()).map(|i| (i + 1).min(last)).collect(),
            prev: (0..events.len()).map(|i| i.saturating_sub(1)).collect(),
            events,
            of_op,
        }
    }

    fn take_out(&mut self, op: usize) {
        let (invoke, complete) = self.of_op[op];
        self.unlink(invoke);
        self.unlink(complete);
    }

    /// Undoes [`take_out`](Self::take_out) of the last operation taken out.
    fn put_back(&mut self, op: usize) {
        let (invoke, complete) = self.of_op[op];
        self.relink(complete);
        self.relink(invoke);
    }

    fn unlink(&mut self, event: usize) {
        let (prev, next) = (self.prev[event], self.next[event]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink(&mut self, event: usize) {
        let (prev, next) = (self.prev[event], self.next[event]);
        self.next[prev] = event;
        self.prev[next] = event;
    }
}

/// The operations taken, as two sets of bits: the required ones and the optional ones (see
/// [`Explored`]).
#[derive(Debug)]
struct TakenSet {
    required: Vec<u64>,
    optional: Vec<u64>,
    /// Each operation's bit: whether in `optional`, and which.
    bit_of: Vec<(bool, usize)>,
}

impl TakenSet {
    fn new(ops: &[ModelOp<'_>]) -> Self {
        let (mut required, mut optional) = (0, 0);
        let bit_of: Vec<(bool, usize)> = ops
            .iter()
            .map(|op| {
                let count = if op.optional {
                    &mut optional
                } else {
                    &mut required
                };
                *count += 1;
                (op.optional, *count - 1)
            })
            .collect();
        TakenSet {
            required: vec![0; required.div_ceil(64)],
            optional: vec![0; optional.div_ceil(64)],
            bit_of,
        }
    }

    fn word_and_mask(&mut self, op: usize) -> (&mut u64, u64) {
        let (optional, bit) = self.bit_of[op];
        let words = if optional {
            &mut self.optional
        } else {
            &mut self.required
        };
        (&mut words[bit / 64], 1 << (bit % 64))
    }

    fn insert(&mut self, op: usize) {
        let (word, mask) = self.word_and_mask(op);
        *word |= mask;
    }

    fn remove(&mut self, op: usize) {
        let (word, mask) = self.word_and_mask(op);
        *word &= !mask;
    }
}

/// A set of operations, as bits.
type Bits = Box<[u64]>;

/// The (operations taken, state) pairs the search has reached. The search is depth first and
/// stops at its first success, so each is a pair it failed from, or one it is exploring: an
/// ancestor of where it is.
///
/// A pair covers another with the same required operations taken and the same state, and more
/// optional ones taken: an optional operation still pending can still be left out, so whatever
/// failed from the first fails from the second. An ancestor never covers a descendant: the
/// path between them would take optional operations only, each of which raises the revision
/// (or its lower bound), and nothing lowers it, so the states differ.
#[derive(Debug, Default)]
struct Explored {
    /// By required operations taken and state: the sets of optional operations taken, none a
    /// subset of another.
    optional_sets: HashMap<(Bits, ConfigState), Vec<Bits>>,
    pairs: usize,
    /// What they take, estimated from above.
    bytes: usize,
}

impl Explored {
    /// Records the pair unless a pair reached before covers it; says whether it was new.
    fn insert(&mut self, taken: &TakenSet, state: ConfigState) -> bool {
        let is_subset = |a: &[u64], b: &[u64]| a.iter().zip(b).all(|(a, b)| a & !b == 0);
        let key = (taken.required.as_slice().into(), state);
        let key_bytes = size_of_val(taken.required.as_slice())
            + size_of::<((Bits, ConfigState), Vec<Bits>)>()
            + 8;
        let sets = self.optional_sets.entry(key).or_insert_with(|| {
            self.bytes += key_bytes;
            Vec::new()
        });
        if sets.iter().any(|set| is_subset(set, &taken.optional)) {
            return false;
        }
        sets.retain(|set| !is_subset(&taken.optional, set));
        sets.push(taken.optional.as_slice().into());
        self.pairs += 1;
        self.bytes += size_of_val(taken.optional.as_slice()) + size_of::<Bits>();
        true
    }
}

/// The deepest the search got.
#[derive(Debug)]
struct Furthest {
    prefix: Vec<usize>,
    unplaced: usize,
    why: String,
}

/// An operation the search took.
#[derive(Debug)]
struct Step {
    op: usize,
    /// The state before it.
    before: ConfigState,
    /// It changed nothing, so it was taken without trying anything else in its place.
    forced: bool,
}

/// Which operations the search is trying to take next: at each point, the required ones
/// first, so that an operation with an unknown outcome is taken only when nothing else will
/// do, and a pair reached without it covers the pairs reached with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trying {
    Required,
    Optional,
}

fn search(ops: &[ModelOp<'_>], initial: ConfigState, budget: Duration) -> Verdict {
    let started = Instant::now();
    let mut timeline = Timeline::new(ops);
    let mut taken = TakenSet::new(ops);
    let mut explored = Explored::default();
    let mut stack: Vec<Step> = Vec::new();
    let mut state = initial;
    let mut required_left = ops.iter().filter(|op| !op.optional).count();
    let mut optional_left = ops.len() - required_left;
    let mut furthest: Option<Furthest> = None;
    let mut trying = Trying::Required;
    let mut cursor = timeline.next[HEAD];
    let mut steps: u64 = 0;
    let out_of = |what: &str, steps: u64, explored: &Explored, furthest: &Option<Furthest>| {
        let placed = furthest.as_ref().map_or(0, |f| f.prefix.len());
        Verdict::Unknown {
            reason: format!(
                "out of {what} after {steps} steps and {} states explored, with at most \
                 {placed} of {} operations placed",
                explored.pairs,
                ops.len()
            ),
        }
    };

    loop {
        if required_left == 0 {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps.is_multiple_of(STEPS_PER_CLOCK_READ) && started.elapsed() > budget {
            return out_of("time", steps, &explored, &furthest);
        }
        let missed = match timeline.events[cursor] {
            Event::Invoke(op) if ops[op].optional != (trying == Trying::Optional) => {
                cursor = timeline.next[cursor];
                continue;
            }
            Event::Invoke(op) => {
                let Ok(after) = ops[op].apply(state) else {
                    cursor = timeline.next[cursor];
                    continue;
                };
                // An operation that changes nothing (a read at the current revision) can come
                // right here: in any order that puts it later, it can move here, since it
                // changes no other operation's state and whatever had to precede it in real
                // time has been taken. So taking it is no choice, and nothing else is tried
                // in its place. (Optional operations always change the revision.)
                let forced = after == state;
                taken.insert(op);
                if explored.insert(&taken, after) {
                    if explored.bytes > MEMO_LIMIT_BYTES {
                        return out_of("memory", steps, &explored, &furthest);
                    }
                    stack.push(Step {
                        op,
                        before: state,
                        forced,
                    });
                    state = after;
                    timeline.take_out(op);
                    if ops[op].optional {
                        optional_left -= 1;
                    } else {
                        required_left -= 1;
                    }
                    trying = Trying::Required;
                    cursor = timeline.next[HEAD];
                    continue;
                }
                taken.remove(op);
                if !forced {
                    cursor = timeline.next[cursor];
                    continue;
                }
                // Explored from here already, in vain: so is every alternative.
                None
            }
            Event::Complete(_) | Event::End if trying == Trying::Required && optional_left > 0 => {
                trying = Trying::Optional;
                cursor = timeline.next[HEAD];
                continue;
            }
            Event::Complete(op) => Some(op),
            // Unreachable while a required operation is left (its completion comes first),
            // but harmless: nothing more can be taken here either.
            Event::End => None,
        };
        if let Some(op) = missed
            && furthest
                .as_ref()
                .is_none_or(|f| stack.len() > f.prefix.len())
        {
            let why = match ops[op].apply(state) {
                Err(refusal) => refusal.to_string(),
                Ok(_) => "it could take effect here, but no order of the rest then works".into(),
            };
            furthest = Some(Furthest {
                prefix: stack.iter().map(|step| step.op).collect(),
                unplaced: op,
                why: format!("{}: {why}", ops[op]),
            });
        }
        // Undo the last choice, and what was taken after it.
        loop {
            let Some(undone) = stack.pop() else {
                return match furthest {
                    Some(f) => Verdict::NotLinearizable {
                        prefix: f.prefix.iter().map(|&op| ops[op].id).collect(),
                        unplaced: ops[f.unplaced].id,
                        why: f.why,
                    },
                    None => Verdict::Unknown {
                        reason: "the search ended without an order or a counterexample".into(),
                    },
                };
            };
            let op = undone.op;
            taken.remove(op);
            state = undone.before;
            timeline.put_back(op);
            if ops[op].optional {
                optional_left += 1;
            } else {
                required_left += 1;
            }
            if !undone.forced {
                trying = if ops[op].optional {
                    Trying::Optional
                } else {
                    Trying::Required
                };
                cursor = timeline.next[timeline.of_op[op].0];
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{C, fail, ok, unknown};
    use super::*;

    const BUDGET: Duration = Duration::from_secs(1);

    fn op(id: u64, at: (u64, u64), call: Call, outcome: Outcome) -> Operation {
        Operation {
            id,
            client: format!("c{id}"),
            node: 1,
            invoked_ns: at.0,
            completed_ns: Some(at.1),
            call,
            outcome,
        }
    }

    fn write(id: u64, at: (u64, u64), content: &str, publish: bool, outcome: Outcome) -> Operation {
        let call = Call::Write {
            config: C.into(),
            content_hash: content.into(),
            idempotency_key: Some(format!("k-{content}")),
            publish,
        };
        op(id, at, call, outcome)
    }

    fn release(id: u64, at: (u64, u64), version: u64, outcome: Outcome) -> Operation {
        let call = Call::Release {
            config: C.into(),
            version,
            if_match: None,
        };
        op(id, at, call, outcome)
    }

    fn read(id: u64, at: (u64, u64), outcome: Outcome) -> Operation {
        let call = Call::Read {
            config: C.into(),
            mode: ReadMode::Linearizable,
        };
        op(id, at, call, outcome)
    }

    /// Config `C` ends with these contents as versions 1, 2, ...
    fn finals(contents: &[&str]) -> BTreeMap<ConfigKey, Vec<FinalVersion>> {
        let versions = (1..).zip(contents).map(|(version, content)| FinalVersion {
            version,
            content_hash: (*content).into(),
        });
        BTreeMap::from([(C.to_owned(), versions.collect())])
    }

    fn verdict(history: &[Operation], contents: &[&str]) -> Verdict {
        let mut judged = check_configs(history, &finals(contents), BUDGET);
        assert_eq!(judged.len(), 1, "{judged:?}");
        judged.remove(0).verdict
    }

    #[track_caller]
    fn assert_unplaced(verdict: Verdict, op: u64, why: &str) {
        match &verdict {
            Verdict::NotLinearizable {
                unplaced, why: w, ..
            } if *unplaced == op && w.contains(why) => {}
            _ => panic!("expected operation {op} unplaced because {why:?}, got {verdict:?}"),
        }
    }

    #[test]
    fn a_sequential_history_passes() {
        let h = [
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            read(2, (11, 12), ok(1, 1, "a")),
            // A draft moves the revision but not what is served.
            write(3, (13, 20), "b", false, ok(2, 2, "b")),
            read(4, (21, 22), ok(2, 1, "a")),
            release(5, (23, 30), 2, ok(3, 2, "b")),
            read(6, (31, 32), ok(3, 2, "b")),
            release(7, (33, 40), 1, ok(4, 1, "a")),
            read(8, (41, 42), ok(4, 1, "a")),
        ];
        let judged = check_configs(&h, &finals(&["a", "b"]), BUDGET);
        assert_eq!(
            judged,
            [ConfigVerdict {
                config: C.into(),
                ops: 8,
                verdict: Verdict::Linearizable
            }]
        );
    }

    #[test]
    fn concurrent_writes_may_take_effect_in_either_order() {
        for (first, second) in [("a", "b"), ("b", "a")] {
            let (va, vb) = if first == "a" { (1, 2) } else { (2, 1) };
            let h = [
                write(1, (0, 10), "a", true, ok(va, va, "a")),
                write(2, (5, 15), "b", true, ok(vb, vb, "b")),
                // Overlapping both writes: may see the first alone.
                read(3, (6, 8), ok(1, 1, first)),
                read(4, (20, 21), ok(2, 2, second)),
            ];
            assert_eq!(verdict(&h, &[first, second]), Verdict::Linearizable);
        }
    }

    #[test]
    fn a_stale_linearizable_read_fails_and_a_stale_default_read_is_left_out() {
        let mut h = [
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            write(2, (11, 20), "b", true, ok(2, 2, "b")),
            read(3, (30, 31), ok(1, 1, "a")),
        ];
        let stale = verdict(&h, &["a", "b"]);
        let Verdict::NotLinearizable { prefix, .. } = &stale else {
            panic!("{stale:?}");
        };
        assert_eq!(prefix, &[1, 2]);
        assert_unplaced(stale, 3, "version 1 is not served (2 is)");

        h[2].call = Call::Read {
            config: C.into(),
            mode: ReadMode::Default,
        };
        assert_eq!(verdict(&h, &["a", "b"]), Verdict::Linearizable);
    }

    #[test]
    fn a_read_of_a_version_before_its_write_began_fails() {
        let h = [
            read(1, (0, 5), ok(1, 1, "a")),
            write(2, (6, 10), "a", true, ok(1, 1, "a")),
        ];
        assert_unplaced(verdict(&h, &["a"]), 1, "nothing is");
    }

    #[test]
    fn an_answer_with_another_versions_content_fails() {
        let read_b = [
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            write(2, (11, 20), "b", false, ok(2, 2, "b")),
            read(3, (21, 22), ok(2, 1, "b")),
        ];
        assert_unplaced(
            verdict(&read_b, &["a", "b"]),
            3,
            "it answered b as version 1, which holds a",
        );
        let release_b = [
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            write(2, (11, 20), "b", false, ok(2, 2, "b")),
            release(3, (21, 30), 1, ok(3, 1, "b")),
        ];
        assert_unplaced(verdict(&release_b, &["a", "b"]), 3, "which holds a");
    }

    #[test]
    fn a_release_of_a_missing_version_or_answered_with_another_fails() {
        let missing = [
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            release(2, (11, 20), 2, ok(2, 2, "b")),
        ];
        assert_unplaced(verdict(&missing, &["a"]), 2, "no version 2 (it has 1)");
        let answered = [
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            write(2, (11, 20), "b", false, ok(2, 2, "b")),
            release(3, (21, 30), 1, ok(3, 2, "b")),
        ];
        assert_unplaced(
            verdict(&answered, &["a", "b"]),
            3,
            "asked to serve version 1, it answered that version 2 is served",
        );
    }

    #[test]
    fn revisions_must_agree_with_the_order() {
        let going_back = [
            write(1, (0, 10), "a", true, ok(5, 1, "a")),
            write(2, (11, 20), "b", true, ok(4, 2, "b")),
        ];
        assert_unplaced(
            verdict(&going_back, &["a", "b"]),
            2,
            "revision 4 is before the config's revision (5)",
        );
        let not_current = [
            write(1, (0, 10), "a", true, ok(5, 1, "a")),
            read(2, (11, 12), ok(6, 1, "a")),
        ];
        assert_unplaced(
            verdict(&not_current, &["a"]),
            2,
            "revision 6 is not the config's revision (5)",
        );
        // A change with an unknown outcome got some revision from 1 on: the next is not before.
        let after_unknown = |revision| {
            let h = [
                write(1, (0, 10), "a", true, ok(1, 1, "a")),
                write(2, (11, 20), "b", true, unknown()),
                write(3, (21, 30), "c", true, ok(revision, 3, "c")),
            ];
            verdict(&h, &["a", "b", "c"])
        };
        assert_eq!(after_unknown(3), Verdict::Linearizable);
        assert_unplaced(
            after_unknown(0),
            3,
            "revision 0 is before the config's revision (at least 1)",
        );
    }

    #[test]
    fn an_unknown_write_in_the_final_state_can_explain_a_read() {
        let h = [
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            write(2, (11, 20), "b", true, unknown()),
            // Its revision is not known, only after 1; the read says which it is.
            read(3, (30, 31), ok(5, 2, "b")),
            write(4, (40, 50), "c", false, ok(6, 3, "c")),
        ];
        assert_eq!(verdict(&h, &["a", "b", "c"]), Verdict::Linearizable);
        // Having been read at revision 5, it bounds the revisions after it.
        let mut behind = h.to_vec();
        behind[3].outcome = ok(3, 3, "c");
        assert_unplaced(
            verdict(&behind, &["a", "b", "c"]),
            4,
            "revision 3 is before the config's revision (5)",
        );
    }

    #[test]
    fn an_unknown_write_absent_from_the_final_state_cannot_explain_a_read() {
        let h = [
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            write(2, (11, 20), "b", true, unknown()),
            read(3, (30, 31), ok(5, 2, "b")),
        ];
        assert_unplaced(verdict(&h, &["a"]), 3, "version 2 is not served (1 is)");
    }

    #[test]
    fn an_unknown_release_may_or_may_not_have_taken_effect_but_only_once() {
        let with_read = |reads: &[(u64, u64, &str)]| {
            let mut h = vec![
                write(1, (0, 10), "a", true, ok(1, 1, "a")),
                write(2, (11, 20), "b", true, ok(2, 2, "b")),
                release(3, (21, 30), 1, unknown()),
            ];
            for (i, (revision, version, content)) in (0..).zip(reads) {
                let at = 40 + 10 * i;
                h.push(read(4 + i, (at, at + 1), ok(*revision, *version, content)));
            }
            verdict(&h, &["a", "b"])
        };
        assert_eq!(with_read(&[(7, 1, "a")]), Verdict::Linearizable);
        assert_eq!(with_read(&[(2, 2, "b")]), Verdict::Linearizable);
        // Not yet, then done.
        assert_eq!(
            with_read(&[(2, 2, "b"), (7, 1, "a")]),
            Verdict::Linearizable
        );
        assert_unplaced(
            with_read(&[(7, 1, "a"), (2, 2, "b")]),
            5,
            "version 2 is not served (1 is)",
        );
        // Not before it was invoked.
        let early = [
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            write(2, (11, 20), "b", true, ok(2, 2, "b")),
            read(3, (21, 22), ok(7, 1, "a")),
            release(4, (23, 30), 1, unknown()),
        ];
        assert_unplaced(verdict(&early, &["a", "b"]), 3, "not served (2 is)");
    }

    #[test]
    fn reads_that_see_concurrent_writes_in_opposite_orders_fail_unless_they_overlap() {
        let h = |first: (u64, u64), second: (u64, u64)| {
            let h = [
                write(1, (0, 100), "a", true, ok(1, 1, "a")),
                write(2, (0, 100), "b", true, ok(2, 2, "b")),
                read(3, first, ok(2, 2, "b")),
                read(4, second, ok(1, 1, "a")),
            ];
            verdict(&h, &["a", "b"])
        };
        assert_unplaced(h((10, 20), (30, 40)), 4, "version 1 is not served (2 is)");
        assert_eq!(h((10, 40), (20, 30)), Verdict::Linearizable);
    }

    #[test]
    fn a_retried_write_is_one_write_pending_from_its_first_attempt() {
        let h = [
            write(1, (0, 10), "a", true, unknown()),
            // The first attempt took effect...
            read(2, (15, 16), ok(1, 1, "a")),
            // ...and the retry is answered with its outcome.
            write(3, (20, 30), "a", true, ok(1, 1, "a")),
        ];
        let judged = check_configs(&h, &finals(&["a"]), BUDGET);
        assert_eq!(judged[0].ops, 2, "{judged:?}");
        assert_eq!(judged[0].verdict, Verdict::Linearizable);
        // Attempts that disagree are writes of their own: here, two claims on version 1.
        let disagreeing = [
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            write(2, (11, 20), "a", true, ok(2, 1, "a")),
        ];
        assert_unplaced(
            verdict(&disagreeing, &["a"]),
            2,
            "version 1 is not the next one (the config has 1)",
        );
    }

    #[test]
    fn refused_operations_are_left_out_and_a_malformed_one_is_undecided() {
        let mut h = [
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            write(2, (11, 20), "b", true, fail()),
            release(3, (21, 30), 7, fail()),
            read(4, (31, 32), fail()),
            read(5, (33, 34), ok(1, 1, "a")),
        ];
        let judged = check_configs(&h, &finals(&["a"]), BUDGET);
        assert_eq!(
            (judged[0].ops, &judged[0].verdict),
            (2, &Verdict::Linearizable)
        );
        h[4].completed_ns = Some(30);
        let malformed = verdict(&h, &["a"]);
        assert!(
            matches!(&malformed, Verdict::Unknown { reason } if reason == "operation 5 completed at 30 ns, before it was invoked at 33 ns"),
            "{malformed:?}"
        );
    }

    #[test]
    fn check_reports_each_non_linearizable_config_once() {
        let other = "acme/shop/prod/other.txt";
        let mut h = vec![
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            write(2, (11, 20), "b", true, ok(2, 2, "b")),
            read(3, (30, 31), ok(1, 1, "a")),
            write(4, (0, 10), "x", true, ok(1, 1, "x")),
            read(5, (30, 31), ok(1, 1, "x")),
        ];
        for op in &mut h[3..] {
            match &mut op.call {
                Call::Write { config, .. } | Call::Read { config, .. } => *config = other.into(),
                Call::Release { .. } => {}
            }
        }
        let mut all = finals(&["a", "b"]);
        all.insert(
            other.into(),
            vec![FinalVersion {
                version: 1,
                content_hash: "x".into(),
            }],
        );
        let found = check(&h, &all, BUDGET);
        assert_eq!(
            found,
            [Anomaly {
                checker: "linearizable",
                op: Some(3),
                config: C.into(),
                message: "no order of its 3 operations works: the longest linearizable prefix \
                          found has 2 (1, 2), and operation 3 cannot come next (read of version \
                          1 at revision 1: version 1 is not served (2 is))"
                    .into(),
            }]
        );
        let finals = super::super::FinalState {
            versions: all.clone(),
            revisions: BTreeMap::new(),
        };
        let judged = super::super::judge(&h, &[], &finals, DEFAULT_BUDGET);
        assert!(judged.anomalies.contains(&found[0]));
    }

    /// splitmix64: enough randomness for a test, and no dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n
        }
    }

    /// A history linearizable by construction: operations take effect one at a time, 10 ns
    /// apart, in a sequential model of the server with one revision counter for all configs
    /// (so each config's revisions have gaps); each operation's invocation and completion are
    /// stretched around that instant by up to `stretch_ns` at random, so neighbours overlap.
    fn random_valid_history(
        seed: u64,
        configs: u64,
        len: u64,
        stretch_ns: u64,
    ) -> (Vec<Operation>, BTreeMap<ConfigKey, Vec<FinalVersion>>) {
        #[derive(Default)]
        struct Truth {
            contents: Vec<String>,
            served: Option<u64>,
            revision: u64,
        }
        let mut rng = Rng(seed);
        let mut truth: BTreeMap<ConfigKey, Truth> = BTreeMap::new();
        let mut log_index = 0;
        let mut history = Vec::new();
        for id in 0..len {
            let instant = 1_000 + 10 * id;
            let config = format!("acme/shop/prod/c{}.txt", rng.below(configs));
            let t = truth.entry(config.clone()).or_default();
            let roll = rng.below(20);
            let (call, outcome) = if let Some(served) = t.served.filter(|_| roll >= 6) {
                if roll < 9 {
                    let version = 1 + rng.below(t.contents.len() as u64);
                    let call = Call::Release {
                        config,
                        version,
                        if_match: None,
                    };
                    let outcome = if rng.below(6) == 0 {
                        if rng.below(2) == 0 { fail() } else { unknown() }
                    } else {
                        log_index += 1;
                        t.served = Some(version);
                        t.revision = log_index;
                        let content = &t.contents[version as usize - 1];
                        if rng.below(6) == 0 {
                            unknown()
                        } else {
                            ok(log_index, version, content)
                        }
                    };
                    (call, outcome)
                } else {
                    let mode = if rng.below(8) == 0 {
                        ReadMode::Default
                    } else {
                        ReadMode::Linearizable
                    };
                    let content = &t.contents[served as usize - 1];
                    (Call::Read { config, mode }, ok(t.revision, served, content))
                }
            } else {
                let content = format!("w{id}");
                let publish = t.served.is_none() || rng.below(2) == 0;
                let outcome = if rng.below(10) == 0 {
                    if rng.below(2) == 0 { fail() } else { unknown() }
                } else {
                    log_index += 1;
                    t.contents.push(content.clone());
                    let version = t.contents.len() as u64;
                    if publish {
                        t.served = Some(version);
                    }
                    t.revision = log_index;
                    if rng.below(8) == 0 {
                        unknown()
                    } else {
                        ok(log_index, version, &content)
                    }
                };
                let call = Call::Write {
                    config,
                    content_hash: content,
                    idempotency_key: None,
                    publish,
                };
                (call, outcome)
            };
            let completed = instant + rng.below(stretch_ns);
            history.push(Operation {
                id,
                client: format!("c{id}"),
                node: 1,
                invoked_ns: instant - rng.below(stretch_ns),
                completed_ns: (!matches!(outcome, Outcome::Unknown { .. }) || rng.below(2) == 0)
                    .then_some(completed),
                call,
                outcome,
            });
        }
        let finals = truth
            .into_iter()
            .map(|(config, t)| {
                let versions = (1..)
                    .zip(t.contents)
                    .map(|(version, content_hash)| FinalVersion {
                        version,
                        content_hash,
                    });
                (config, versions.collect())
            })
            .collect();
        (history, finals)
    }

    /// Whether the operations not in `taken` can follow, in some order, from `state`: every
    /// order and every choice of optional operations, tried one by one.
    fn brute_force(ops: &[ModelOp<'_>], state: ConfigState, taken: &mut [bool]) -> bool {
        if ops.iter().zip(&*taken).all(|(op, &t)| t || op.optional) {
            return true;
        }
        for next in 0..ops.len() {
            let after_all_pending = ops
                .iter()
                .zip(&*taken)
                .all(|(op, &t)| t || op.completed.is_none_or(|c| c >= ops[next].invoked));
            if taken[next] || !after_all_pending {
                continue;
            }
            if let Ok(after) = ops[next].apply(state) {
                taken[next] = true;
                let found = brute_force(ops, after, taken);
                taken[next] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }

    #[test]
    fn the_search_agrees_with_brute_force_on_small_random_histories() {
        let mut rng = Rng(1);
        let mut counts = [0; 2];
        for seed in 0..600 {
            // Everything overlaps everything: the most orders to choose from.
            let (mut h, finals) = random_valid_history(seed, 1, 8, 100);
            // Then, half the time, a slip: a wrong number, or an operation moved later.
            if rng.below(2) == 0 {
                let i = rng.below(h.len() as u64) as usize;
                let op = &mut h[i];
                match (&mut op.outcome, rng.below(3)) {
                    (Outcome::Ok { revision, .. }, 0) => *revision = revision.saturating_sub(1),
                    (Outcome::Ok { version, .. }, 1) => *version += 1,
                    _ => {
                        op.invoked_ns += 100;
                        op.completed_ns = op.completed_ns.map(|t| t + 100);
                    }
                }
            }
            let ops: Vec<&Operation> = h.iter().collect();
            let versions = finals.values().next().map_or(&[][..], Vec::as_slice);
            let Ok(model) = model(&ops, versions) else {
                continue;
            };
            let expected = brute_force(
                &model,
                ConfigState::default(),
                &mut vec![false; model.len()],
            );
            let verdict = decide(&model, ConfigState::default(), BUDGET);
            assert!(
                !matches!(verdict, Verdict::Unknown { .. }),
                "seed {seed}: {verdict:?}"
            );
            assert_eq!(
                verdict == Verdict::Linearizable,
                expected,
                "seed {seed}: {verdict:?} for {h:#?}"
            );
            counts[usize::from(expected)] += 1;
        }
        // Both kinds, plenty of each.
        assert!(counts.iter().all(|&n| n > 100), "{counts:?}");
    }

    #[test]
    fn large_random_valid_histories_pass() {
        for seed in 0..4 {
            let (h, finals) = random_valid_history(seed, 3, 400, 150);
            let judged = check_configs(&h, &finals, BUDGET);
            assert_eq!(judged.len(), 3);
            for j in &judged {
                assert_eq!(j.verdict, Verdict::Linearizable, "seed {seed}: {j:?}");
            }
            assert!(
                judged.iter().map(|j| j.ops).sum::<usize>() > 300,
                "{judged:?}"
            );
        }
    }

    #[test]
    fn a_stale_read_planted_in_a_large_random_history_fails() {
        let (mut h, finals) = random_valid_history(7, 3, 400, 150);
        // The first linearizable read past the middle, made older than a change acknowledged
        // before it began: it then fits no order, whatever the operations with unknown outcomes
        // did. (The further it is, the more orders the search must rule out: it has to exhaust
        // the orders of everything before it.)
        let acknowledged = |op: &Operation| match (&op.call, &op.outcome, op.completed_ns) {
            (Call::Write { .. } | Call::Release { .. }, Outcome::Ok { revision, .. }, Some(t)) => {
                Some((op.config().to_owned(), t, *revision))
            }
            _ => None,
        };
        let changes: Vec<_> = h.iter().filter_map(acknowledged).collect();
        let (stale, revision) = h
            .iter()
            .enumerate()
            .skip(h.len() / 2)
            .find_map(|(i, op)| {
                let Call::Read {
                    config,
                    mode: ReadMode::Linearizable,
                } = &op.call
                else {
                    return None;
                };
                let newest = changes
                    .iter()
                    .filter(|(c, completed, _)| c == config && *completed < op.invoked_ns)
                    .map(|(_, _, revision)| *revision)
                    .max()?;
                Some((i, newest - 1))
            })
            .expect("the history has a linearizable read after a change");
        if let Outcome::Ok { revision: r, .. } = &mut h[stale].outcome {
            *r = revision;
        }
        let found = check(&h, &finals, BUDGET);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].op, Some(h[stale].id), "{found:?}");
        assert_eq!(found[0].config, h[stale].config(), "{found:?}");
    }

    #[test]
    fn many_concurrent_release_changes_exhaust_a_tiny_budget_without_hanging() {
        let mut h = vec![
            write(1, (0, 10), "a", true, ok(1, 1, "a")),
            write(2, (0, 10), "b", false, ok(2, 2, "b")),
        ];
        // Forty acknowledged release changes, all at once and batched into one entry: each
        // subset of them taken is a state of its own (2^40) before the search can conclude
        // that no order serves the read that follows at a revision nothing got.
        h.extend((0..40).map(|i| release(10 + i, (20, 200), 1 + i % 2, ok(5, 1 + i % 2, ""))));
        h.push(read(99, (300, 310), ok(6, 1, "a")));
        let started = Instant::now();
        let judged = check_configs(&h, &finals(&["a", "b"]), Duration::from_millis(20));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(
            matches!(&judged[0].verdict, Verdict::Unknown { reason } if reason.starts_with("out of time")),
            "{judged:?}"
        );
        assert_eq!(
            check(&h, &finals(&["a", "b"]), Duration::from_millis(20)),
            []
        );
    }
}
