//! Partition leases: a safety net for brokers that keep a dead member's assignment.
//!
//! Apache Kafka rebalances a group when a member stops heartbeating, so every partition always
//! has an owner. tansu 0.6 drops such a member without a rebalance: its partitions stay
//! assigned to nobody and their records wait forever. So every instance keeps a lease in Redis
//! on each partition assigned to it and, at the same interval, checks that every partition of
//! the input topics has a live lease. When some have none for a whole lease time, with no
//! rebalance in between (its own, or another member's: a member between losing its partitions
//! and being given new ones marks the group as rebalancing in Redis for a lease time; a mark
//! that stays for six lease times is a stuck rebalance and holds nothing back), the loop
//! leaves and rejoins the group: the broker then assigns every partition again (and, on
//! tansu, chooses a new leader if the dead member led).
//! Only one instance of the group may rejoin per three lease times (a claim in Redis), so
//! instances that notice the same orphan do not undo one another's rebalances.
//!
//! Leases are kept by a task of their own, so an instance busy with a slow batch (Redis
//! retries, a long replay) keeps them: a lease says "a live member holds this partition".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rdkafka::consumer::Consumer;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::consumer::Kafka;
use super::RunError;
use crate::config::Config;
use crate::observe::Metrics;
use crate::store::lease::Leases;

/// Leases between two rejoins of a group: a rebalance on tansu takes up to a session timeout
/// or two, and a rejoin before it settles starts it over.
const REJOIN_EVERY_LEASES: u32 = 3;

/// Lease times another member's rebalance holds rejoins back at the most: a rebalance that
/// goes on longer is stuck (on tansu, waiting for a dead leader), and a rejoin, which makes the
/// broker choose a new leader, is what ends it.
const REBALANCE_HOLDS_LEASES: u32 = 6;

/// The lease task, and its verdict.
pub(super) struct Ownership {
    rejoin: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    task: JoinHandle<()>,
}

impl Ownership {
    /// Starts keeping leases on the partitions assigned to `consumer` and watching every one of
    /// `partitions` (the input topics').
    pub(super) fn start(
        consumer: Arc<Kafka>,
        leases: Leases,
        config: &Config,
        partitions: Vec<(String, i32)>,
        metrics: Arc<Metrics>,
    ) -> Ownership {
        let rejoin = Arc::new(AtomicBool::new(false));
        let keeper = Keeper {
            owner: format!(
                "{}-{:016x}",
                config.kafka().client_id,
                rand::random::<u64>()
            ),
            group: config.kafka().group_id.clone(),
            partitions,
            config: config.ownership().clone(),
            consumer,
            leases,
            metrics: Arc::clone(&metrics),
            rejoin: Arc::clone(&rejoin),
        };
        Ownership {
            rejoin,
            metrics,
            task: tokio::spawn(keeper.keep()),
        }
    }

    /// Leaves and rejoins the group if some partition has had no owner for a lease time. Called
    /// by the loop between batches, never during one.
    pub(super) fn rejoin_if_wanted(
        &self,
        consumer: &Kafka,
        topics: &[&str],
    ) -> Result<(), RunError> {
        if self.rejoin.swap(false, Ordering::Relaxed) {
            consumer.unsubscribe();
            consumer.subscribe(topics).map_err(RunError::Subscribe)?;
            self.metrics.rejoins.inc();
        }
        Ok(())
    }
}

impl Drop for Ownership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The lease task's state.
struct Keeper {
    /// This instance's name in the leases.
    owner: String,
    group: String,
    /// Every partition of the input topics.
    partitions: Vec<(String, i32)>,
    config: crate::config::OwnershipConfig,
    consumer: Arc<Kafka>,
    leases: Leases,
    metrics: Arc<Metrics>,
    rejoin: Arc<AtomicBool>,
}

impl Keeper {
    async fn keep(self) {
        let mut tick = tokio::time::interval(self.config.renew_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Since when some partition has had no lease, with no rebalance here in between.
        let mut missing_since: Option<Instant> = None;
        // Since when some member has marked the group as rebalancing, without a break.
        let mut marked_since: Option<Instant> = None;
        let mut assignments_seen = 0;
        loop {
            tick.tick().await;
            let assignments = self.consumer.context().assignments();
            // Between losing its partitions and being given new ones (or before its first
            // assignment), this instance marks the group as rebalancing.
            let rebalancing = assignments == 0 || self.consumer.context().rebalancing();
            if assignments != assignments_seen || rebalancing {
                // A rebalance here: the broker is assigning partitions anyway; start over.
                assignments_seen = assignments;
                missing_since = None;
            }
            let Some((orphans, group_rebalancing)) = self.renew_and_check(rebalancing).await else {
                continue;
            };
            self.metrics.partitions_unowned.set(orphans.len() as i64);
            if !group_rebalancing {
                marked_since = None;
            }
            let held_back = group_rebalancing
                && marked_since.get_or_insert_with(Instant::now).elapsed()
                    < self.config.lease * REBALANCE_HOLDS_LEASES;
            if orphans.is_empty() || held_back {
                // Partitions are orphans while their members wait for a rebalance to finish
                // (on tansu a member can wait 10 s and more for its assignment): a rejoin
                // then would only start the rebalance over.
                missing_since = None;
                continue;
            }
            debug!(?orphans, "Partitions without a lease.");
            let since = *missing_since.get_or_insert_with(Instant::now);
            if since.elapsed() < self.config.lease {
                continue;
            }
            missing_since = None;
            // One instance of the group rejoins per lease time: when all of them did at once,
            // each rejoin undid the rebalance of the one before.
            match self
                .leases
                .claim_rejoin(
                    &self.group,
                    &self.owner,
                    self.config.lease * REJOIN_EVERY_LEASES,
                )
                .await
            {
                Ok(true) => {
                    warn!(
                        partitions = ?orphans,
                        "Partitions without an owner: rejoining the group so the broker \
                         assigns them again."
                    );
                    self.rejoin.store(true, Ordering::Relaxed);
                }
                Ok(false) => debug!("Another instance is rejoining the group."),
                Err(err) => {
                    let error = crate::redact::error(&err);
                    warn!(%error, "Cannot claim the group's rejoin.");
                }
            }
        }
    }

    /// Renews the leases on the partitions assigned here (and, when `rebalancing`, the group's
    /// rebalancing mark); returns the partitions with no live lease and whether some member is
    /// rebalancing, or `None` when Redis or the consumer could not tell.
    async fn renew_and_check(&self, rebalancing: bool) -> Option<(Vec<String>, bool)> {
        let assigned: Vec<(String, i32)> = match self.consumer.assignment() {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect(),
            Err(err) => {
                warn!(error = %err, "Cannot read the assignment.");
                return None;
            }
        };
        self.metrics.partitions_assigned.set(assigned.len() as i64);
        let renewed = self
            .leases
            .renew(
                &self.group,
                &self.owner,
                &assigned,
                rebalancing,
                self.config.lease,
                &self.partitions,
            )
            .await;
        match renewed {
            Ok(renewal) => {
                let orphans = self
                    .partitions
                    .iter()
                    .zip(renewal.leased)
                    .filter(|(_, leased)| !leased)
                    .map(|((topic, partition), _)| format!("{topic}/{partition}"))
                    .collect();
                Some((orphans, renewal.rebalancing))
            }
            Err(err) => {
                let error = crate::redact::error(&err);
                warn!(%error, "Cannot renew or read partition leases.");
                None
            }
        }
    }
}
