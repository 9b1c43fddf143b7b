"""The registry's index: the names of services by attribute and by value, so that `find`
looks at the few services that could match instead of all of them.

values[attr][value] is the one name that has that pair (most pairs, such as a service's
own address, belong to one service, and a bare string costs far less than a set) or the
set of names when there are more.  values[attr] as a whole is the index by attribute: the
names behind all its values are the services that have attr, for a filter `attr *`, and
there are never more values than such services.  counts[attr] says how many there are
without walking them.
"""


class AttributeIndex:
    """Service names by (attribute, value) and by attribute."""

    def __init__(self):
        self.values: dict[str, dict[str, str | set]] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, attrs: dict) -> None:
        for attr, value in attrs.items():
            by_value = self.values.setdefault(attr, {})
            have = by_value.get(value)
            if have is None:
                by_value[value] = name
            elif isinstance(have, set):
                have.add(name)
            else:
                by_value[value] = {have, name}
            self.counts[attr] = self.counts.get(attr, 0) + 1

    def discard(self, name: str, attrs: dict) -> None:
        for attr, value in attrs.items():
            by_value = self.values[attr]
            have = by_value[value]
            if isinstance(have, set):
                have.discard(name)
                if len(have) == 1:
                    by_value[value] = next(iter(have))
            else:
                del by_value[value]
            self.counts[attr] -= 1
            if not by_value:
                del self.values[attr], self.counts[attr]

    def _size(self, attr: str, value: str) -> int:
        if value == "*":
            return self.counts.get(attr, 0)
        have = self.values.get(attr, {}).get(value)
        return 0 if have is None else len(have) if isinstance(have, set) else 1

    def candidates(self, pairs: list[tuple[str, str]]):
        """Names among which every service matching all pairs is found (given at least
        one pair): those of the pair with the fewest."""
        attr, value = min(pairs, key=lambda pair: self._size(*pair))
        if value == "*":
            for have in self.values.get(attr, {}).values():
                yield from (have if isinstance(have, set) else (have,))
            return
        have = self.values.get(attr, {}).get(value)
        if have is not None:
            yield from (have if isinstance(have, set) else (have,))
