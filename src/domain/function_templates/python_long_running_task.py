# -*- coding: utf8 -*-
# A long-running task for async execution: it works in steps and logs its progress,
# so the Event Management page shows it running, then finished.
import time


def main_handler(event, context):
    steps = int(event.get("steps", 10))
    interval = float(event.get("interval", 1))
    print("Starting task with %d steps of %.1f s" % (steps, interval))
    for step in range(1, steps + 1):
        time.sleep(interval)
        print("Step %d/%d done" % (step, steps))
    print("Task complete")
    return {"steps": steps, "status": "done"}
