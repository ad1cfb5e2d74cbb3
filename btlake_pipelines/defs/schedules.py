"""Schedules, running by default (UTC): nightly catch-up first, then maintenance, so the
partitions catch-up rewrote are compacted the same night; and the hourly Delta log upkeep.

- ``nightly_catch_up`` (02:15): re-derive partitions the archive holds and the lake lacks,
  and record partitions the lake holds that Dagster has not seen (bundles ingested with the
  CLI, or a run that stopped between its commit and its events).
- ``nightly_maintenance`` (03:15): compact and Z-order yesterday's partitions, checkpoint,
  vacuum past the retention period (``btlake maintain``'s work).
- ``hourly_log_upkeep`` (:40 every hour): checkpoint every table with new commits and remove
  log files past the log retention. deltalake checkpoints every 100 commits by itself; the
  hour bounds what a reader replays on tables that commit rarely or whose checkpoint was
  missed, and keeps ``_delta_log`` from growing without end (one commit per 15 s sensor tick
  is 5,760 files a day).
"""

from datetime import timedelta

from dagster import (
    DefaultScheduleStatus,
    RunConfig,
    RunRequest,
    ScheduleEvaluationContext,
    schedule,
)

from btlake_pipelines.defs.jobs import (
    CatchUpConfig,
    MaintainConfig,
    catch_up_job,
    log_upkeep_job,
    maintenance_job,
)


@schedule(job=maintenance_job, cron_schedule="15 3 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def nightly_maintenance(context: ScheduleEvaluationContext) -> RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=1)).date()
    return RunRequest(run_key=f"maintain-{day}",
                      run_config=RunConfig(ops={"maintain_lake":
                                                MaintainConfig(day=day.isoformat())}),
                      tags={"btlake/day": day.isoformat()})


@schedule(job=catch_up_job, cron_schedule="15 2 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def nightly_catch_up(context: ScheduleEvaluationContext) -> RunRequest:
    day = context.scheduled_execution_time.date()
    return RunRequest(run_key=f"catch-up-{day}",
                      run_config=RunConfig(ops={"catch_up": CatchUpConfig()}))


@schedule(job=log_upkeep_job, cron_schedule="40 * * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def hourly_log_upkeep(context: ScheduleEvaluationContext) -> RunRequest:
    hour = context.scheduled_execution_time.strftime("%Y-%m-%dT%H")
    return RunRequest(run_key=f"log-upkeep-{hour}")


all_schedules = [nightly_catch_up, nightly_maintenance, hourly_log_upkeep]
