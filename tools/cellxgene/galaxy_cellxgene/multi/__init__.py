"""Several datasets in one session: a landing page, and one cellxgene app per dataset.

cellxgene 1.3.0 serves one dataset per app. Rather than one process per dataset (each paying
cellxgene's start-up and a port, and a Galaxy entry point each), one WSGI dispatcher mounts
each dataset's own `build_session()` app under `/d/<slug>/` and strips that prefix
(SCRIPT_NAME/PATH_INFO). cellxgene's page derives its API base from `location.pathname`, so
everything it requests stays under its prefix.

A dataset is loaded on first use and dropped again after idling, or when loading another one
would exceed the memory budget (least recently used first). Dropping loses nothing: every
save is already in that dataset's Galaxy output (outputs.py writes it within the request),
and a reload resumes from those outputs as "previous annotations".

The parts, each a module of this package:

- names.py     Galaxy element identifiers -> safe, unique file stems and URL segments
- datasets.py  what a dataset is (read cheaply from its file) and which can be opened
- pool.py      the loaded datasets: load on first use, least recently used out, idle ones reaped
- listing.py   galaxy.json, so each output element keeps the user's element identifier
- routes.py    the WSGI dispatcher: landing page, status, finish, /d/<slug>/ to each app
- landing.py   the landing page (its markup in landing.html)
- session.py   MultiSession, what serve() drives (serve.ServedSession, as app.Session is)
- subsets.py   "New dataset from cells ... Save at Finish" for the whole list: one subsets folder

File names come from session_files.OutputDirs, named as the single viewer's files are.
"""
