'use strict';

exports.main_handler = async (event, context) => {
    return event;
};
