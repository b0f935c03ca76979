//! Campaigns: many seeds over the configuration matrix (`check`: seven
//! platforms x GPSPM, APM and RDMA FLUSH over RDMA, and the seven platforms
//! over TCP), and the mutant matrix (`mutants`).

use rpmem_core::flush::mutants::Mutant;
use rpmem_core::policy::{Method, Placement};

use crate::platform::{Config, Platform, Verdict};
use crate::workload::Size;
use crate::world::{self, Mode, RunOptions, RunReport, SimError, Violation};

/// Which runs a `check` campaign makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckOptions {
    /// Seeds per configuration.
    pub seeds: u64,
    /// First seed.
    pub first_seed: u64,
    /// Only this method.
    pub method: Option<Method>,
    /// Only this platform.
    pub platform: Option<Platform>,
    /// Only this placement (RDMA or TCP).
    pub placement: Option<Placement>,
    /// Crash point selection.
    pub mode: Mode,
    /// Workload size (`None`: from the seed).
    pub size: Option<Size>,
    /// Mutant switched on in every run (normally `None`).
    pub mutant: Mutant,
    /// Verify the incremental crash bookkeeping against a full recomputation
    /// at every crash point (slow).
    pub self_check: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            seeds: 20,
            first_seed: 1,
            method: None,
            platform: None,
            placement: None,
            mode: Mode::Auto,
            size: None,
            mutant: Mutant::None,
            self_check: false,
        }
    }
}

/// What the seeds of one configuration found.
#[derive(Clone, Debug)]
pub struct ConfigResult {
    /// The configuration.
    pub config: Config,
    /// Seeds run.
    pub seeds: u64,
    /// Steps run.
    pub steps: u64,
    /// Crash points examined.
    pub crash_points: u64,
    /// Post-crash word values judged.
    pub values_judged: u64,
    /// The most words in flight at one crash point, over all runs.
    pub max_in_flight: u64,
    /// Crash points with a broken promise.
    pub violating_points: u64,
    /// Seeds with a broken promise.
    pub violating_seeds: u64,
    /// The first broken promise and its seed.
    pub first_violation: Option<(u64, Violation)>,
    /// Runs that went wrong otherwise, with their seeds.
    pub errors: Vec<(u64, SimError)>,
    /// Calls that returned success / failed.
    pub calls: (u64, u64),
}

impl ConfigResult {
    fn new(config: Config) -> ConfigResult {
        ConfigResult {
            config,
            seeds: 0,
            steps: 0,
            crash_points: 0,
            values_judged: 0,
            max_in_flight: 0,
            violating_points: 0,
            violating_seeds: 0,
            first_violation: None,
            errors: Vec::new(),
            calls: (0, 0),
        }
    }

    fn add(&mut self, r: RunReport) {
        self.seeds = self.seeds.saturating_add(1);
        self.steps = self.steps.saturating_add(r.steps);
        self.crash_points = self.crash_points.saturating_add(r.crash_points);
        self.values_judged = self.values_judged.saturating_add(r.values_judged);
        self.max_in_flight = self.max_in_flight.max(r.max_in_flight);
        self.violating_points = self.violating_points.saturating_add(r.violating_points);
        self.calls.0 = self.calls.0.saturating_add(r.calls_ok);
        self.calls.1 = self.calls.1.saturating_add(r.calls_failed);
        if r.violated() {
            self.violating_seeds = self.violating_seeds.saturating_add(1);
        }
        if self.first_violation.is_none() {
            if let Some(v) = r.first_violation {
                self.first_violation = Some((r.seed, v));
            }
        }
        self.errors
            .extend(r.errors.into_iter().map(|e| (r.seed, e)));
    }

    /// Whether this configuration's result is what it must be: no broken
    /// promise and no error when allowed; loss found when forbidden and
    /// loss is expected.
    pub fn as_expected(&self) -> bool {
        if !self.errors.is_empty() {
            return false;
        }
        match self.config.verdict {
            Verdict::Allowed => self.violating_points == 0,
            Verdict::ForbiddenLossExpected => self.violating_points > 0,
            Verdict::ForbiddenSafeInModel => true,
        }
    }

    /// The report line.
    pub fn line(&self) -> String {
        let verdict = match self.config.verdict {
            Verdict::Allowed => "allowed  ",
            Verdict::ForbiddenLossExpected | Verdict::ForbiddenSafeInModel => "forbidden",
        };
        let mut s = format!(
            "{} {} seeds {:>4}  crash points {:>8}  values judged {:>9}  in flight <= {:>3}  ",
            self.config,
            verdict,
            self.seeds,
            self.crash_points,
            self.values_judged,
            self.max_in_flight
        );
        match self.config.verdict {
            Verdict::Allowed => s.push_str(&format!("violations {}", self.violating_points)),
            Verdict::ForbiddenLossExpected | Verdict::ForbiddenSafeInModel => {
                if self.violating_points > 0 {
                    s.push_str(&format!(
                        "loss found in {} of {} seeds",
                        self.violating_seeds, self.seeds
                    ));
                } else {
                    s.push_str("NO LOSS FOUND");
                }
                if self.config.verdict == Verdict::ForbiddenSafeInModel {
                    s.push_str(" (rpmemd(1) forbids it; the model expects no loss: the cache is persistent)");
                }
            }
        }
        if !self.errors.is_empty() {
            s.push_str(&format!(", {} ERRORS", self.errors.len()));
        }
        s
    }
}

/// The result of a `check` campaign.
#[derive(Clone, Debug)]
pub struct CheckSummary {
    /// Per configuration.
    pub results: Vec<ConfigResult>,
}

impl CheckSummary {
    /// Crash points, values judged, and the most words in flight at one
    /// point, over the allowed (`true`) or the forbidden configurations.
    pub fn totals(&self, allowed: bool) -> (u64, u64, u64) {
        self.totals_of(allowed, None)
    }

    /// [`totals`](Self::totals) over the configurations of one placement
    /// (`None`: all).
    pub fn totals_of(&self, allowed: bool, placement: Option<Placement>) -> (u64, u64, u64) {
        self.results
            .iter()
            .filter(|r| r.config.allowed() == allowed)
            .filter(|r| placement.is_none_or(|p| p == r.config.placement))
            .fold((0u64, 0u64, 0u64), |(p, v, m), r| {
                (
                    p.saturating_add(r.crash_points),
                    v.saturating_add(r.values_judged),
                    m.max(r.max_in_flight),
                )
            })
    }

    /// Crash points with a broken promise in allowed configurations.
    pub fn allowed_violations(&self) -> u64 {
        self.results
            .iter()
            .filter(|r| r.config.allowed())
            .fold(0u64, |a, r| a.saturating_add(r.violating_points))
    }

    /// Forbidden configurations in which loss was found.
    pub fn forbidden_with_loss(&self) -> usize {
        self.results
            .iter()
            .filter(|r| !r.config.allowed() && r.violating_points > 0)
            .count()
    }

    /// Whether every configuration behaved as it must (the exit status).
    pub fn ok(&self) -> bool {
        self.results.iter().all(ConfigResult::as_expected)
    }

    /// The last line of the report.
    pub fn final_line(&self) -> String {
        self.summary_of(None)
    }

    /// One summary line per placement that ran (`RDMA: ...`, `TCP: ...`).
    pub fn placement_lines(&self) -> Vec<String> {
        [Placement::Rdma, Placement::Stream]
            .into_iter()
            .filter(|&p| self.results.iter().any(|r| r.config.placement == p))
            .map(|p| {
                let name = match p {
                    Placement::Rdma => "RDMA",
                    Placement::Stream => "TCP",
                };
                let n = self
                    .results
                    .iter()
                    .filter(|r| r.config.placement == p)
                    .count();
                format!("{name} ({n} configurations): {}", self.summary_of(Some(p)))
            })
            .collect()
    }

    fn summary_of(&self, placement: Option<Placement>) -> String {
        let of = |r: &&ConfigResult| placement.is_none_or(|p| p == r.config.placement);
        let (ap, av, am) = self.totals_of(true, placement);
        let (fp, fv, fm) = self.totals_of(false, placement);
        let nallowed = (self.results.iter().filter(of))
            .filter(|r| r.config.allowed())
            .count();
        let nforbidden = self
            .results
            .iter()
            .filter(of)
            .count()
            .saturating_sub(nallowed);
        let violations = (self.results.iter().filter(of))
            .filter(|r| r.config.allowed())
            .fold(0u64, |a, r| a.saturating_add(r.violating_points));
        let with_loss = (self.results.iter().filter(of))
            .filter(|r| !r.config.allowed() && r.violating_points > 0)
            .count();
        let allowed = format!(
            "allowed configurations: {ap} crash points, {av} post-crash values judged, at most {am} words in flight, {violations} violations"
        );
        let forbidden = format!(
            "forbidden: {fp} crash points, {fv} values judged, at most {fm} in flight, loss found in {with_loss} of {nforbidden}"
        );
        match (nallowed, nforbidden) {
            (_, 0) => allowed,
            (0, _) => forbidden,
            _ => format!("{allowed}; {forbidden}"),
        }
    }
}

/// The configurations a campaign covers: RDMA's 21, then TCP's 7 (a TCP
/// configuration runs GPSPM: `--method gpspm` keeps it, `apm` and `flush`
/// leave it out).
pub fn configs(
    method: Option<Method>,
    platform: Option<Platform>,
    placement: Option<Placement>,
) -> Vec<Config> {
    Config::all()
        .into_iter()
        .chain(Config::all_tcp())
        .filter(|c| method.is_none_or(|m| m == c.method))
        .filter(|c| platform.is_none_or(|p| p == c.platform))
        .filter(|c| placement.is_none_or(|p| p == c.placement))
        .collect()
}

/// Run `opts.seeds` seeds in every selected configuration; `progress` sees
/// each configuration's result as it is done.
pub fn check(opts: &CheckOptions, mut progress: impl FnMut(&ConfigResult)) -> CheckSummary {
    let mut results = Vec::new();
    let run_opts = RunOptions {
        mutant: opts.mutant,
        mode: opts.mode,
        size: opts.size,
        self_check: opts.self_check,
        ..RunOptions::default()
    };
    for config in configs(opts.method, opts.platform, opts.placement) {
        let mut res = ConfigResult::new(config);
        for i in 0..opts.seeds {
            let seed = opts.first_seed.saturating_add(i);
            res.add(world::run(seed, config, &run_opts));
        }
        progress(&res);
        results.push(res);
    }
    CheckSummary { results }
}

/// How a mutant fared.
#[derive(Clone, Debug)]
pub struct MutantResult {
    /// The mutant.
    pub mutant: Mutant,
    /// Seeds needed to catch it when every seed runs every allowed
    /// configuration (the fewest over the configurations), or the seeds
    /// tried when it escaped.
    pub seeds_tried: u64,
    /// The run that caught it first.
    pub caught: Option<(u64, Config, Violation)>,
    /// Per allowed configuration: seeds needed to catch it there (`None`:
    /// not caught within the limit).
    pub per_config: Vec<(Config, Option<u64>)>,
}

impl MutantResult {
    /// The report lines (a summary, then the per-configuration counts).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.caught {
            Some((seed, config, v)) => out.push(format!(
                "{:<24} caught after {} seed{} ({}, seed {seed}, crash after step {}: {})",
                mutant_name(self.mutant),
                self.seeds_tried,
                if self.seeds_tried == 1 { "" } else { "s" },
                config
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
                v.step,
                v.finding.problem
            )),
            None => out.push(format!(
                "{:<24} NOT CAUGHT in {} seeds",
                mutant_name(self.mutant),
                self.seeds_tried
            )),
        }
        let per: Vec<String> = self
            .per_config
            .iter()
            .map(|(c, n)| {
                let name = c
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join("/");
                match n {
                    Some(n) => format!("{name} {n}"),
                    None => format!("{name} -"),
                }
            })
            .collect();
        out.push(format!(
            "    seeds to catch per configuration: {}",
            per.join(", ")
        ));
        out
    }
}

/// The command-line name of a mutant.
pub fn mutant_name(m: Mutant) -> &'static str {
    match m {
        Mutant::None => "none",
        Mutant::RespondBeforeFlush => "respond-before-flush",
        Mutant::FlushSkipsFence => "flush-skips-fence",
        Mutant::FlushMissesLastLine => "flush-misses-last-line",
        Mutant::ApmWithoutRead => "apm-without-read",
        Mutant::InlineWithoutFlush => "inline-without-flush",
        Mutant::DeepAsPlain => "deep-as-plain",
        Mutant::WriteOvertakesInline => "write-overtakes-inline",
        Mutant::StreamedWithoutFence => "streamed-without-fence",
        Mutant::RdmaFlushWithoutFlush => "rdma-flush-without-flush",
        Mutant::WrittenBackLineNotFlushed => "written-back-line-not-flushed",
        Mutant::PlainBodyCountedWrittenBack => "plain-body-counted-written-back",
    }
}

/// The mutant called `name`.
pub fn parse_mutant(name: &str) -> Option<Mutant> {
    std::iter::once(Mutant::None)
        .chain(Mutant::ALL)
        .find(|&m| mutant_name(m) == name)
}

/// Seeds needed to catch `m` in `config`, trying at most `max_seeds` from
/// `first_seed`; with the catching run.
pub fn catch_in(
    m: Mutant,
    config: Config,
    max_seeds: u64,
    first_seed: u64,
) -> Option<(u64, u64, Violation)> {
    let opts = RunOptions {
        mutant: m,
        ..RunOptions::default()
    };
    (0..max_seeds).find_map(|i| {
        let seed = first_seed.saturating_add(i);
        world::run(seed, config, &opts)
            .first_violation
            .map(|v| (i.saturating_add(1), seed, v))
    })
}

/// The seeds of `seeds` whose run with `m` on breaks a promise in
/// `config` (each seed independent of the others).
pub fn catching_seeds(m: Mutant, config: Config, seeds: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    let opts = RunOptions {
        mutant: m,
        ..RunOptions::default()
    };
    seeds
        .filter(|&seed| world::run(seed, config, &opts).violated())
        .collect()
}

/// For each mutant and each allowed configuration, run seeds from
/// `first_seed` until a crash point breaks a promise (at most `max_seeds`).
pub fn mutants(
    max_seeds: u64,
    first_seed: u64,
    mut progress: impl FnMut(&MutantResult),
) -> Vec<MutantResult> {
    let allowed: Vec<Config> = configs(None, None, None)
        .into_iter()
        .filter(Config::allowed)
        .collect();
    let mut out = Vec::new();
    for m in Mutant::ALL {
        let mut res = MutantResult {
            mutant: m,
            seeds_tried: max_seeds,
            caught: None,
            per_config: Vec::new(),
        };
        for &config in &allowed {
            let found = catch_in(m, config, max_seeds, first_seed);
            if let Some((n, seed, v)) = &found {
                let better = match &res.caught {
                    None => true,
                    Some(_) => *n < res.seeds_tried,
                };
                if better {
                    res.seeds_tried = *n;
                    res.caught = Some((*seed, config, v.clone()));
                }
            }
            res.per_config.push((config, found.map(|(n, _, _)| n)));
        }
        progress(&res);
        out.push(res);
    }
    out
}

/// The last line of the mutant report.
pub fn mutants_final_line(results: &[MutantResult]) -> String {
    let caught = results.iter().filter(|r| r.caught.is_some()).count();
    format!("caught {caught} of {} mutants", results.len())
}
