'use strict';

exports.main_handler = async (event, context) => {
    console.log('Received event:', JSON.stringify(event, null, 2));
    console.log('Request id:', context.request_id);
    return { message: 'Hello World', event };
};
