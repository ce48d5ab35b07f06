"""Every object a reader of an HDF5 file can reach, judged before any reader opens the file.

A reader reaches an object in two ways: by following links from the root group, and by
dereferencing an object reference stored in an attribute or a dataset. The second reaches
objects no link names (an object can stay in a file after its last link is removed), so a walk
over links alone misses them. Here every link is walked, and every reference is refused unless
it is the one anndata has ever written: anndata 0.7 keeps a categorical column's labels in
`<frame>/__categories/<column>` and points to them from the `categories` attribute of the
column's codes. Such a reference must point at exactly that linked dataset, which the walk
then judges like any other object.

The walk is iterative (a queue of open group identifiers, children opened relative to their
group: no name is resolved from the root, no recursion in Python or in HDF5), bounded in
depth and in the number of links, and it reads no data except the few bytes of reference
attributes. For each dataset it asks HDF5 only for creation properties and storage size.

What it refuses, one Finding each (containment.py turns them into the user's sentences):
external and user-defined links (their targets are outside the file, or resolved by code
outside it), a second hard link to an object already seen (a cycle, or the same bytes read
many times over), nesting deeper than MAX_DEPTH, more than MAX_LINKS links, references other
than the 0.7 pattern, datasets stored in other files (external storage, virtual datasets),
datasets behind a filter this HDF5 lacks (HDF5 would search plugin libraries for it), and
datasets that declare far more bytes than the file stores for them (unwritten chunks read as
zeros: a 1 MB file declaring gigabytes).
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass

import h5py
import numpy as np

MAX_DEPTH = 64  # anndata nests uns dicts a few levels; cellxgene and anndata recurse per level
MAX_LINKS = 200_000  # links and attributes: an h5ad has a few per column and uns entry; each ~20 us
# Declared versus stored bytes: a dataset without filters stores what it declares (unwritten
# chunks are what differs); deflate, the strongest filter HDF5 ships, cannot exceed ~1032:1.
SMALL_BYTES = 1 << 20
UNFILTERED_RATIO = 2
FILTERED_RATIO = 1100
# Registered filter ids (HDF Group's list) of plugins h5ad writers use: named in the refusal even
# when the file stores no name.
FILTER_NAMES = {
    307: "bzip2",
    32000: "lzf",
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    32013: "zfp",
    32015: "zstd",
    32017: "sz",
    32026: "blosc2",
}
ATTR_REFERENCE_NAME = b"categories"
LEGACY_CATEGORIES = b"__categories"


@dataclass(frozen=True)
class Finding:
    """One reason the file is refused."""

    path: str  # HDF5 path of the object (or link) concerned
    kind: str  # see KINDS in containment.py
    detail: str = ""


class _Stop(Exception):
    """The walk has found enough (or hit a cap): stop at once."""


def walk(file_id: h5py.h5f.FileID, limit: int = 20) -> list[Finding]:
    """Every Finding of the open file (up to `limit`)."""
    walker = _Walker(file_id, limit)
    with contextlib.suppress(_Stop):
        walker.run()
    return walker.found[:limit]


class _Walker:
    def __init__(self, file_id: h5py.h5f.FileID, limit: int) -> None:
        self.fid = file_id
        self.limit = limit
        self.found: list[Finding] = []
        self.seen: dict[int, str] = {}  # object address -> the path it was first reached by
        self.links = 0

    def add(self, finding: Finding, stop: bool = False) -> None:
        self.found.append(finding)
        if stop or len(self.found) >= self.limit:
            raise _Stop

    def run(self) -> None:
        root = h5py.h5o.open(self.fid, b"/")
        self.seen[h5py.h5o.get_info(root).addr] = "/"
        self._attributes(root, "/", None)
        queue: deque[tuple[h5py.h5g.GroupID, str, int]] = deque([(root, "", 0)])
        while queue:
            group, path, depth = queue.popleft()
            for name, info in self._links(group, path):
                child_path = f"{path}/{name.decode(errors='replace')}"
                if info.type == h5py.h5l.TYPE_SOFT:
                    continue  # a path inside this file: its target is reached (and judged) by hard links
                if info.type == h5py.h5l.TYPE_EXTERNAL:
                    target = group.links.get_val(name)
                    where = b":".join(target).decode(errors="replace") if isinstance(target, tuple) else str(target)
                    self.add(Finding(child_path, "external link", where))
                    continue
                if info.type != h5py.h5l.TYPE_HARD:
                    self.add(Finding(child_path, "user-defined link", str(int(info.type))))
                    continue
                child = h5py.h5o.open(group, name)
                addr = h5py.h5o.get_info(child).addr
                if addr in self.seen:
                    self.add(Finding(child_path, "second link", self.seen[addr]))
                    continue
                self.seen[addr] = child_path
                self._attributes(child, child_path, group)
                if isinstance(child, h5py.h5d.DatasetID):
                    self._dataset(child, child_path)
                elif isinstance(child, h5py.h5g.GroupID):
                    if depth + 1 > MAX_DEPTH:
                        self.add(Finding(child_path, "nesting", str(MAX_DEPTH)), stop=True)
                    queue.append((child, child_path, depth + 1))

    def _links(self, group: h5py.h5g.GroupID, path: str) -> list[tuple[bytes, h5py.h5l.LinkInfo]]:
        names: list[bytes] = []

        def each(name: bytes) -> bool | None:
            self.links += 1
            if self.links > MAX_LINKS:
                return True
            names.append(name)
            return None

        # H5Literate over one group (not a recursive visit); h5py's info=True variant fails on groups.
        group.links.iterate(each)
        if self.links > MAX_LINKS:
            self.add(Finding(path or "/", "too many links", str(MAX_LINKS)), stop=True)
        return [(name, group.links.get_info(name)) for name in names]

    def _attributes(self, obj: h5py.h5o.ObjectID, path: str, parent: h5py.h5g.GroupID | None) -> None:
        count = h5py.h5a.get_num_attrs(obj)
        self.links += count  # attributes count toward the same cap: each is opened and judged
        if self.links > MAX_LINKS:
            self.add(Finding(path or "/", "too many links", str(MAX_LINKS)), stop=True)
        for index in range(count):
            attr = h5py.h5a.open(obj, index=index)
            if not holds_references(attr.get_type()):
                continue
            name = attr.get_name()
            if not self._is_legacy_categories(obj, attr, path, parent):
                self.add(Finding(path, "reference attribute", name.decode(errors="replace")))

    def _is_legacy_categories(
        self, obj: h5py.h5o.ObjectID, attr: h5py.h5a.AttrID, path: str, parent: h5py.h5g.GroupID | None
    ) -> bool:
        """The anndata 0.7 pattern: a scalar object reference from a column's codes to
        <frame>/__categories/<column>, that very dataset (compared by address)."""
        if attr.get_name() != ATTR_REFERENCE_NAME or parent is None or not isinstance(obj, h5py.h5d.DatasetID):
            return False
        if attr.get_type().get_class() != h5py.h5t.REFERENCE or attr.shape not in ((), (1,)):
            return False
        if not attr.get_type().equal(h5py.h5t.STD_REF_OBJ):
            return False
        value = np.empty(attr.shape, dtype=h5py.ref_dtype)
        attr.read(value)
        column = path.rsplit("/", 1)[-1].encode()
        expected = LEGACY_CATEGORIES + b"/" + column
        if not parent.links.exists(LEGACY_CATEGORIES) or not parent.links.exists(expected):
            return False
        labels = h5py.h5o.open(parent, expected)
        if not isinstance(labels, h5py.h5d.DatasetID):
            return False
        target = h5py.h5r.dereference(value.reshape(-1)[0], self.fid)
        return target is not None and h5py.h5o.get_info(target).addr == h5py.h5o.get_info(labels).addr

    def _dataset(self, dataset: h5py.h5d.DatasetID, path: str) -> None:
        dtype = dataset.get_type()
        if holds_references(dtype):
            self.add(Finding(path, "reference dataset"))
        dcpl = dataset.get_create_plist()
        if dcpl.get_external_count():
            count = dcpl.get_external_count()
            files = ", ".join(sorted({dcpl.get_external(i)[0].decode(errors="replace") for i in range(count)}))
            self.add(Finding(path, "external storage", files))
            return
        if dcpl.get_layout() == h5py.h5d.VIRTUAL:
            count = dcpl.get_virtual_count()
            self.add(
                Finding(
                    path, "virtual dataset", ", ".join(sorted({dcpl.get_virtual_filename(i) for i in range(count)}))
                )
            )
            return
        filtered = False
        for i in range(dcpl.get_nfilters()):
            code, _flags, _values, name = dcpl.get_filter(i)
            filtered = True
            if not h5py.h5z.filter_avail(code):
                label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
                label = FILTER_NAMES.get(code) or label or "unnamed"
                self.add(Finding(path, "filter", f"'{label}' (id {code})"))
                return
        space = dataset.get_space()
        declared = int(space.get_simple_extent_npoints()) * int(dtype.get_size())
        stored = int(dataset.get_storage_size())
        ratio = FILTERED_RATIO if filtered else UNFILTERED_RATIO
        if declared > ratio * stored + SMALL_BYTES:
            self.add(Finding(path, "declared size", f"{declared}/{stored}"))


def holds_references(datatype: h5py.h5t.TypeID) -> bool:
    """Whether values of this type are (or contain) object or region references. Iterative:
    a compound of arrays of compounds is a tree the file chooses."""
    pending = [datatype]
    visited = 0
    while pending:
        current = pending.pop()
        visited += 1
        if visited > 10_000:
            return True  # no honest type is this deep; treat as the worst case
        kind = current.get_class()
        if kind == h5py.h5t.REFERENCE:
            return True
        if kind == h5py.h5t.COMPOUND:
            pending.extend(current.get_member_type(i) for i in range(current.get_nmembers()))
        elif kind in (h5py.h5t.ARRAY, h5py.h5t.VLEN):
            pending.append(current.get_super())
    return False
