"""Pytrees for attrs classes: parameters and states that vmap, grad and compile understand.

A model (its parameters) and its state are frozen attrs classes registered as torch pytrees:

* a field holding a tensor, another registered pytree, or a dict/list/tuple containing tensors is a
  *child*: ``vmap`` maps over it, ``grad`` differentiates it, ``compile`` treats it as an input;
* every other field (a Python float, a method name, ``None``, a shape) is *static* and travels in the
  tree's context: it is the same in every vmap lane and a constant to the compiler.

So a parameter given as a Python float is static and one given as a tensor is a leaf. `stack`
turns the fields that differ between lanes into tensors with a leading lane dimension.

Trees are rebuilt with ``object.__new__`` and ``object.__setattr__`` (never through ``__init__``), so
validators and converters never see the fake or batched values used by vmap and compile. Use
`replace` to change fields; it skips validation, which `validate` runs on demand. A step may also
build a new tree with the class (``State(v=...)``): inside a compiled graph that sets the fields
without attrs' machinery, which the compiler cannot trace.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import torch
import torch.utils._pytree as _pytree

from .transforms import compiling, traced

__all__ = [
    "pytree",
    "replace",
    "validate",
    "tree_map",
    "tree_leaves",
    "to",
    "stack",
    "unstack",
    "lane_count",
    "is_concrete",
    "stack_key",
    "structural",
]


#: Instance attribute naming the fields that were children when the tree was rebuilt. vmap and compile
#: rebuild trees with ints or fake values in place of tensors; those fields must stay children.
_CHILDREN = "_pytree_children"


def _is_child(value: Any) -> bool:
    """True when ``value`` belongs in the tree's children rather than its static context: a tensor, a
    registered pytree, or a dict/list/tuple holding one of those."""
    if isinstance(value, torch.Tensor) or _is_registered(value):
        return True
    if isinstance(value, dict):
        return any(_is_child(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_is_child(item) for item in value)
    return False


def _is_registered(value: Any) -> bool:
    return getattr(type(value), "__sapicore_pytree__", False)


def _flatten(obj: Any) -> tuple[list[Any], tuple]:
    names, children, static = [], [], []
    kept = obj.__dict__.get(_CHILDREN, ())
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        if field.name in kept or _is_child(value):
            names.append(field.name)
            children.append(value)
        else:
            static.append((field.name, value))
    return children, (tuple(names), tuple(static))


def _flatten_with_keys(obj: Any) -> tuple[list[tuple[Any, Any]], tuple]:
    children, context = _flatten(obj)
    return [(_pytree.GetAttrKey(name), child) for name, child in zip(context[0], children)], context


def _make_unflatten(cls: type) -> Callable[[Iterable[Any], tuple], Any]:
    def unflatten(children: Iterable[Any], context: tuple) -> Any:
        names, static = context
        obj = object.__new__(cls)
        obj.__dict__[_CHILDREN] = names
        for name, value in zip(names, children):
            object.__setattr__(obj, name, value)
        for name, value in static:
            object.__setattr__(obj, name, value)
        return obj

    return unflatten


def pytree(cls: type | None = None, **attrs_options: Any) -> Any:
    """Class decorator: a frozen attrs class (``eq=False``) registered as a torch pytree.

    Use it for model parameters and states::

        @pytree
        class LIFState:
            v: torch.Tensor
            refractory_left: torch.Tensor
    """

    def wrap(cls: type) -> type:
        options = {"frozen": True, "eq": False, "slots": False}
        options.update(attrs_options)
        new_cls = attrs.define(cls, **options)
        new_cls.__init__ = _traceable_init(new_cls)
        new_cls.__sapicore_pytree__ = True
        _pytree.register_pytree_node(
            new_cls,
            _flatten,
            _make_unflatten(new_cls),
            serialized_type_name=f"{new_cls.__module__}.{new_cls.__qualname__}",
            flatten_with_keys_fn=_flatten_with_keys,
        )
        return new_cls

    return wrap if cls is None else wrap(cls)


def _traceable_init(cls: type) -> Callable[..., None]:
    """``cls``'s attrs ``__init__``, which a compiler traces by setting the fields one by one.

    A frozen attrs class's ``__init__`` starts with ``object.__setattr__.__get__(self)``, which
    ``torch.compile`` cannot trace: a model whose step built its state with ``State(v=...)`` broke
    the graph there and ran eagerly. Outside a trace this is attrs' own ``__init__`` (validators and
    converters run); inside one, the fields are set directly and validators are skipped, as in
    `replace`. Classes with factory defaults or fields outside ``__init__`` keep attrs' alone.
    """
    attrs_init = cls.__init__
    fields = attrs.fields(cls)
    if any(not field.init or isinstance(field.default, attrs.Factory) for field in fields):
        return attrs_init
    parameters, keywords = [], []
    for field in fields:
        own = keywords if field.kw_only else parameters
        own.append(field.alias if field.default is attrs.NOTHING else f"{field.alias}=_defaults[{field.name!r}]")
    signature = ", ".join(["self", *parameters, *(["*", *keywords] if keywords else [])])
    passed = ", ".join(f"{field.alias}={field.alias}" for field in fields)
    assignments = [f"        object.__setattr__(self, {field.name!r}, {field.alias})" for field in fields]
    if hasattr(cls, "__attrs_post_init__"):
        assignments.append("        self.__attrs_post_init__()")
    source = (
        f"def __init__({signature}):\n"
        "    if not _compiling():\n"
        f"        _attrs_init(self, {passed})\n"
        "    else:\n" + "\n".join(assignments or ["        pass"]) + "\n"
    )
    namespace = {"_attrs_init": attrs_init, "_defaults": {field.name: field.default for field in fields}}
    namespace["_compiling"] = compiling
    exec(compile(source, f"<sapicore pytree init {cls.__qualname__}>", "exec"), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = attrs_init.__doc__
    return init


_FIELD_NAMES: dict[type, tuple[tuple[str, ...], frozenset]] = {}


def _field_names(cls: type) -> tuple[tuple[str, ...], frozenset]:
    if cls not in _FIELD_NAMES:
        names = tuple(field.name for field in attrs.fields(cls))
        _FIELD_NAMES[cls] = (names, frozenset(names))
    return _FIELD_NAMES[cls]


def replace(obj: Any, **changes: Any) -> Any:
    """A copy of the pytree ``obj`` with some fields changed; no validation, safe under compile.

    Raises ``TypeError`` for a field the class does not have.
    """
    cls = type(obj)
    names, known = _field_names(cls)
    if not known.issuperset(changes):
        unknown = sorted(set(changes) - known)
        raise TypeError(
            f"{cls.__name__} has no field {', '.join(map(repr, unknown))}; its fields are: {', '.join(names)}"
        )
    new = object.__new__(cls)
    if not compiling():  # the quick way; the compiler traces the explicit one below
        new.__dict__.update(obj.__dict__)
        new.__dict__.update(changes)
        return new
    if _CHILDREN in obj.__dict__:
        new.__dict__[_CHILDREN] = obj.__dict__[_CHILDREN]
    for name in names:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(obj, name))
    return new


def is_concrete(value: Any) -> bool:
    """True for a real tensor or a Python value; False inside vmap, grad or compile tracing."""
    return not isinstance(value, torch.Tensor) or not traced(value)


def validate(obj: Any) -> Any:
    """Run the field validators of ``obj`` and of every pytree nested in it; return ``obj``.

    Values seen inside vmap, grad or compile are not checked (their contents are not known there).
    """
    if _is_registered(obj):
        attrs.validate(obj)
        for field in attrs.fields(type(obj)):
            validate(getattr(obj, field.name))
    elif isinstance(obj, dict):
        for value in obj.values():
            validate(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            validate(value)
    return obj


def tree_map(fn: Callable[[Any], Any], tree: Any, *rest: Any) -> Any:
    """Apply ``fn`` to every leaf (tensor) of ``tree`` (and the matching leaves of ``rest``)."""
    return _pytree.tree_map(fn, tree, *rest)


def tree_leaves(tree: Any) -> list[Any]:
    """The leaves of ``tree`` in flattening order."""
    return _pytree.tree_leaves(tree)


def to(tree: Any, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Any:
    """Move every tensor of ``tree`` to ``device``; cast its floating tensors to ``dtype``.

    Integer and boolean tensors keep their dtype; static Python values are left as they are.
    """
    if dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype such as torch.float32, got {dtype}")

    def move(leaf: Any) -> Any:
        if not isinstance(leaf, torch.Tensor):
            return leaf
        target = dtype if dtype is not None and leaf.is_floating_point() else leaf.dtype
        return leaf.to(device=device, dtype=target)

    return tree_map(move, tree)


def lane_count(tree: Any) -> int:
    """The size of the leading (lane) dimension shared by every leaf of a stacked tree."""
    leaves = [leaf for leaf in tree_leaves(tree) if isinstance(leaf, torch.Tensor)]
    if not leaves:
        raise ValueError(
            "this tree has no tensor leaves, so it has no lanes; build lanes with sapicore.functional.stack"
        )
    sizes = {leaf.shape[0] if leaf.dim() > 0 else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"the leaves of this tree do not share one leading lane dimension (leading sizes: {sorted(map(str, sizes))})"
        )
    return sizes.pop()


def structural(field: attrs.Attribute) -> bool:
    """True for a field that fixes a tree's structure rather than a parameter value: one declared
    ``int`` (a size, a maximum delay, a capacity) or marked ``metadata={"structural": True}`` (a
    projection's dt). Lanes of one sweep must agree on every such field."""
    return field.type in ("int", int) or bool(field.metadata.get("structural"))


def _stack_values(values: Sequence[Any], where: str, like: torch.Tensor | None, fixed: bool = False) -> Any:
    first = values[0]
    if _is_registered(first):
        cls = type(first)
        if any(type(value) is not cls for value in values):
            raise TypeError(f"cannot stack {where}: lanes mix {sorted({type(v).__name__ for v in values})}")
        fields = {
            field.name: field.metadata["lanes"]([getattr(value, field.name) for value in values])
            if "lanes" in field.metadata
            else _stack_values(
                [getattr(value, field.name) for value in values], f"{where}.{field.name}", like, structural(field)
            )
            for field in attrs.fields(cls)
        }
        return replace(first, **fields)
    if isinstance(first, dict):
        keys = list(first)
        if any(list(value) != keys for value in values):
            raise ValueError(f"cannot stack {where}: lanes have different keys")
        stacked = {key: _stack_values([value[key] for value in values], f"{where}[{key!r}]", like) for key in keys}
        tensors = [item for item in stacked.values() if isinstance(item, torch.Tensor)]
        if tensors:  # the dict is a child: its numbers are leaves too, and every leaf needs the lane axis
            for key, item in stacked.items():
                if isinstance(item, numbers.Real) and not isinstance(item, bool):
                    stacked[key] = torch.full(
                        (len(values),), float(item), dtype=tensors[0].dtype, device=tensors[0].device
                    )
        return stacked
    if fixed and any(not isinstance(value, torch.Tensor) and value != first for value in values):
        differ = sorted({repr(value) for value in values})
        raise ValueError(
            f"cannot stack {where}: lanes differ in a structural setting ({', '.join(differ)}); lanes of one "
            "sweep share sizes, delays and dt: run lanes that differ in them as separate sweeps"
        )
    is_number = [isinstance(value, numbers.Real) and not isinstance(value, bool) for value in values]
    is_tensor = [isinstance(value, torch.Tensor) for value in values]
    if all(n or t for n, t in zip(is_number, is_tensor)):
        if all(is_number) and all(value == first for value in values):
            return first
        if all(is_tensor) and all(value is first or _same_tensor(value, first) for value in values):
            return first.expand(len(values), *first.shape)  # shared by every lane: a view, no copies
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        if any(not t.is_floating_point() for t in tensors) and len({(t.shape, t.dtype) for t in tensors}) > 1:
            found = sorted({f"{tuple(t.shape)} {t.dtype}" for t in tensors})
            raise ValueError(
                f"cannot stack {where}: its integer tensors (connectivity, delays) differ between lanes in shape "
                f"or type ({'; '.join(found)}); lanes of one sweep share their connectivity's shapes"
            )
        dtype = torch.get_default_dtype() if like is None else like.dtype
        if tensors:
            dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
        # numbers become tensors where the trees' tensors are, so a sweep of GPU models stays on the GPU
        device = tensors[0].device if tensors else (None if like is None else like.device)
        as_tensors = [torch.as_tensor(v, dtype=dtype, device=device) for v in values]
        try:
            shape = torch.broadcast_shapes(*[t.shape for t in as_tensors])
        except RuntimeError as err:
            shapes = [tuple(t.shape) for t in as_tensors]
            raise ValueError(f"cannot stack {where}: lane shapes {shapes} do not broadcast") from err
        return torch.stack([t.expand(shape) for t in as_tensors])
    if all(value == first if not isinstance(value, torch.Tensor) else False for value in values):
        return first
    raise ValueError(
        f"cannot stack {where}: lanes differ in a non-numeric setting ({values[0]!r} vs others); "
        "lanes of one sweep may differ only in numeric parameters"
    )


def stack_key(tree: Any, fixed: bool = False) -> Any:
    """A hashable summary of what `stack` needs lanes to share: trees with equal keys stack.

    Numbers and floating tensors (parameters) leave no trace; classes, dict keys, structural fields
    (`structural`), integer tensors' shapes and types, and every other setting do. A field whose
    metadata names a ``"lanes"`` function (which `stack` uses to combine the lanes' values, such as a
    dense projection's ``full``) leaves none either.
    """
    if _is_registered(tree):
        cls = type(tree)
        fields = [f for f in attrs.fields(cls) if "lanes" not in f.metadata]  # those combine across lanes
        return (cls, tuple((f.name, stack_key(getattr(tree, f.name), structural(f))) for f in fields))
    if isinstance(tree, dict):
        return ("dict", tuple((key, stack_key(value)) for key, value in tree.items()))
    if isinstance(tree, torch.Tensor):
        return "float" if tree.is_floating_point() else ("tensor", tuple(tree.shape), tree.dtype)
    if isinstance(tree, numbers.Real) and not isinstance(tree, bool) and not fixed:
        return "number"
    try:
        hash(tree)
        return tree
    except TypeError:
        return repr(tree)


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and bool(torch.equal(a, b))
    )  # sync-ok: validation and stacking, outside the steps


def stack(trees: Sequence[Any]) -> Any:
    """Stack trees of the same class into one tree whose leaves carry a leading lane dimension.

    Numeric fields equal in every lane stay static; fields that differ become tensors of shape
    ``(lanes, *broadcast_shape)`` (on the device, and in the floating dtype, of the trees' tensors); a tensor equal in every lane (connectivity, say) becomes an
    expanded view that costs no memory (move trees to their device before stacking, since moving
    such a view copies it). Settings that are not numbers (method names) must agree.
    """
    trees = list(trees)
    if not trees:
        raise ValueError("stack needs at least one tree")
    like = next(
        (leaf for leaf in tree_leaves(trees[0]) if isinstance(leaf, torch.Tensor) and leaf.is_floating_point()), None
    )
    result = _stack_values(trees, type(trees[0]).__name__, like)
    has_leaf = any(isinstance(leaf, torch.Tensor) for leaf in tree_leaves(result))
    if not has_leaf:
        # identical lanes: make every numeric field a lane tensor so the lane count is known
        result = _expand_numbers(result, len(trees))
    return _expand_leaves(result, len(trees))


def _expand_numbers(tree: Any, lanes: int) -> Any:
    if not _is_registered(tree):
        return tree
    changes = {}
    for field in attrs.fields(type(tree)):
        value = getattr(tree, field.name)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            changes[field.name] = torch.full((lanes,), float(value))
        else:
            changes[field.name] = _expand_numbers(value, lanes)
    return replace(tree, **changes)


def _expand_leaves(tree: Any, lanes: int) -> Any:
    """Tensors of a stacked tree already have the lane dimension; make sure they all do."""

    def check(leaf: Any) -> Any:
        if isinstance(leaf, torch.Tensor) and (leaf.dim() == 0 or leaf.shape[0] != lanes):
            raise ValueError(f"stacked leaf of shape {tuple(leaf.shape)} lacks the lane dimension {lanes}")
        return leaf

    return tree_map(check, tree)


def unstack(tree: Any) -> list[Any]:
    """Split a stacked tree into a list of per-lane trees (the inverse of `stack`)."""
    return [tree_map(lambda leaf, i=i: leaf[i], tree) for i in range(lane_count(tree))]


def float_or_tensor(value: Any, instance: Any = None, field: Any = None) -> Any:
    """attrs converter for a parameter: ints become floats, sequences and arrays become tensors.

    Raises ``TypeError`` naming the class and field for anything else (a string, a bool, ...).
    """
    where = f"{type(instance).__name__}.{field.name}" if field is not None else "a parameter"
    if isinstance(value, bool):
        raise TypeError(f"{where} must be a number or a floating tensor, got the bool {value!r}")
    if isinstance(value, numbers.Real):
        return float(value)
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else value.to(torch.get_default_dtype())
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{where} must be a number or a floating tensor, got str {value!r}")
    try:
        return torch.as_tensor(value, dtype=torch.get_default_dtype())
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{where} must be a number or a floating tensor, got {type(value).__name__}") from err


def distinct(tensor: torch.Tensor) -> torch.Tensor:
    """A view of ``tensor`` without the repeats of its broadcast (stride-0) dimensions: the values it
    holds, checked once (an expanded lane axis or a stacked shared table costs nothing)."""
    index = tuple(
        slice(0, 1) if stride == 0 and size > 1 else slice(None) for size, stride in zip(tensor.shape, tensor.stride())
    )
    return tensor[index]


def finite(tensor: torch.Tensor) -> bool:
    """False when a concrete floating tensor holds NaN or infinite values (True for any other)."""
    if not (is_concrete(tensor) and tensor.is_floating_point()):
        return True
    tensor = distinct(tensor)  # a shared (expanded) tensor's values once
    # a finite sum proves every value finite, in one pass without temporaries (a projection's
    # weights can take gigabytes); only a sum that is not finite needs the value by value check
    if bool(torch.isfinite(tensor.sum())):  # sync-ok: entry check, outside the steps
        return True
    return bool(torch.isfinite(tensor).all())  # sync-ok: entry check, outside the steps


def check_values_finite(what: str, tensor: torch.Tensor) -> None:
    """Raise if a (concrete, floating) tensor holds NaN or infinite values, naming the first."""
    if not finite(tensor):
        values = distinct(tensor)
        first = torch.nonzero(~torch.isfinite(values))[0].tolist()  # sync-ok: entry check, outside steps
        raise ValueError(f"{what} has NaN or infinite values (the first at index {tuple(first)})")


def _values(value: Any) -> Any:
    return distinct(value.detach()) if isinstance(value, torch.Tensor) else torch.tensor(float(value))


def check_finite(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: the parameter is finite (``None`` is allowed)."""
    if value is None or not is_concrete(value):
        return
    if isinstance(value, torch.Tensor) and value.device.type == "meta":
        return
    if not bool(torch.isfinite(_values(value)).all()):  # sync-ok: validation and stacking, outside the steps
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be finite, got {_describe(value)}")


def check_not_nan(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: the parameter is not NaN (infinite bounds are allowed)."""
    if value is None or not is_concrete(value):
        return
    if bool(torch.isnan(_values(value)).any()):  # sync-ok: validation and stacking, outside the steps
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must not be NaN, got {_describe(value)}")


def check_positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: the parameter is finite and > 0 (``None`` is allowed)."""
    check_finite(instance, attribute, value)
    if value is None or not is_concrete(value):
        return
    if not bool((_values(value) > 0).all()):  # sync-ok: validation and stacking, outside the steps
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be > 0, got {_describe(value)}")


def check_non_negative(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: the parameter is finite and >= 0 (``None`` is allowed)."""
    check_finite(instance, attribute, value)
    if value is None or not is_concrete(value):
        return
    if not bool((_values(value) >= 0).all()):  # sync-ok: validation and stacking, outside the steps
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be >= 0, got {_describe(value)}")


def check_above(other: str) -> Any:
    """attrs validator: the parameter is finite and above the field ``other`` (declared before it) in
    every entry, e.g. a threshold above its reset potential."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        check_finite(instance, attribute, value)
        low = getattr(instance, other)
        if value is None or low is None or not (is_concrete(value) and is_concrete(low)):
            return
        if not bool((_values(value) - _values(low) > 0).all()):  # sync-ok: validation, outside the steps
            raise ValueError(
                f"{type(instance).__name__}.{attribute.name} ({_describe(value)}) must be above {other} ({_describe(low)})"
            )

    return check


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        bad = value.detach().flatten()
        return f"a tensor of shape {tuple(value.shape)} (first values {bad[:4].tolist()})"  # sync-ok: error message
    return repr(value) if not (isinstance(value, float) and math.isnan(value)) else "nan"


def parameter(default: Any, *, check: Callable = check_finite) -> Any:
    """An attrs field for a numeric model parameter with a validator (finite by default)."""
    return attrs.field(
        default=default,
        converter=attrs.Converter(float_or_tensor, takes_self=True, takes_field=True),
        validator=check,
    )
