"""The three answers a matcher gives; identity is what counts."""


class Result:
    __slots__ = ("_name",)

    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return self._name

    def __bool__(self):
        raise TypeError("compare matcher results with 'is', not truthiness")


MATCH = Result("MATCH")
NO_MATCH = Result("NO_MATCH")
NEED_MORE = Result("NEED_MORE")
