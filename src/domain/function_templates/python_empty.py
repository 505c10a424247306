# -*- coding: utf8 -*-


def main_handler(event, context):
    return event
