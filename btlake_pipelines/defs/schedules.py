"""Nightly schedules, running by default (UTC): catch-up first, then maintenance, so the
partitions catch-up rewrote are compacted the same night.

- ``nightly_catch_up`` (02:15): re-derive partitions the archive holds and the lake lacks,
  and record partitions the lake holds that Dagster has not seen (bundles ingested with the
  CLI, or a run that stopped between its commit and its events).
- ``nightly_maintenance`` (03:15): compact and Z-order yesterday's partitions, checkpoint,
  vacuum past the retention period (``btlake maintain``'s work).
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


all_schedules = [nightly_catch_up, nightly_maintenance]
