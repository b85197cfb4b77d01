//! Starting and stopping the systemd timers of the periodic jobs. Under `COST_TAGS_ROOT`
//! systemctl is never run (it would act on the machine, not on the fake tree): the
//! installer says what a real node would run instead.

use anyhow::Result;

use super::periodic::{self, Init, InitSystem, Job};
use super::Session;

impl Session<'_> {
    /// After the units of `job` were written: make its timer run. `units_changed`: they
    /// changed in this run (systemd must reread them and restart the timer).
    pub(crate) fn timer_activate(&mut self, job: &Job, init: InitSystem, units_changed: bool) -> Result<()> {
        if init.init != Init::Systemd {
            return Ok(());
        }
        let timer = job.timer_unit();
        if self.paths.root.is_some() {
            self.out.log(format!(
                "COST_TAGS_ROOT is set: not running systemctl (a real node runs 'systemctl enable --now {timer}')"
            ));
            return Ok(());
        }
        if !init.live {
            return Ok(());
        }
        if units_changed {
            periodic::systemctl(&["daemon-reload"]).map_err(anyhow::Error::msg)?;
            periodic::systemctl(&["enable", &timer]).map_err(anyhow::Error::msg)?;
            periodic::systemctl(&["restart", &timer]).map_err(anyhow::Error::msg)?;
            self.out.log(format!("{timer}: enabled and (re)started"));
        } else if !periodic::timer_running(&timer) {
            periodic::systemctl(&["enable", "--now", &timer]).map_err(anyhow::Error::msg)?;
            self.out.changed(format!("{timer}: enabled and started"));
        }
        Ok(())
    }

    /// Before removing the units of `job`: stop and disable its timer. A failure is
    /// said, not fatal: the units go anyway.
    pub(crate) fn timer_disable(&mut self, job: &Job) {
        let timer = job.timer_unit();
        if self.paths.root.is_some() {
            self.out.log(format!(
                "COST_TAGS_ROOT is set: not running systemctl (a real node runs 'systemctl disable --now {timer}')"
            ));
            return;
        }
        if !self.systemd_live() {
            return;
        }
        match periodic::systemctl(&["disable", "--now", &timer]) {
            Ok(()) => self.out.log(format!("{timer}: stopped and disabled")),
            Err(e) => self.out.warn(e),
        }
    }

    /// After removing units: systemd forgets them.
    pub(crate) fn timer_forget(&mut self) {
        if self.paths.root.is_none() && self.systemd_live() && periodic::systemctl(&["daemon-reload"]).is_err() {
            self.out.warn("systemctl daemon-reload failed");
        }
    }

    fn systemd_live(&self) -> bool {
        self.paths.root.is_none() && periodic::detect(None, &self.paths.cron_dir).live
    }
}
