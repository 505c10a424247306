# -*- coding: utf8 -*-
# A handler that fails: use it to see how failed events, their errors and
# stack traces appear on the Event Management page.


class OrderValidationError(Exception):
    pass


def validate(order):
    if "amount" not in order:
        raise OrderValidationError("order has no amount: %r" % (order,))
    return order["amount"]


def main_handler(event, context):
    print("Validating order")
    amount = validate(event.get("order", {}))
    return {"amount": amount}
