'use strict';
// A long-running task for async execution: it works in steps and logs its progress.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

exports.main_handler = async (event, context) => {
    const steps = Number(event.steps || 10);
    const interval = Number(event.interval || 1);
    console.log(`Starting task with ${steps} steps of ${interval} s`);
    for (let step = 1; step <= steps; step++) {
        await sleep(interval * 1000);
        console.log(`Step ${step}/${steps} done`);
    }
    console.log('Task complete');
    return { steps, status: 'done' };
};
