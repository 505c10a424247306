# -*- coding: utf8 -*-
import json


def main_handler(event, context):
    print("Received event: " + json.dumps(event, indent=2))
    print("Request id: " + context["request_id"])
    return {"message": "Hello World", "event": event}
