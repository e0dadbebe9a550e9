"""The notebook layer: rich display, DataFrame views, `%nbkube` magics and the live dashboard.

Thin by design: it renders what the registry and the informers already know and never reconciles
anything. IPython and ipywidgets are imported only in this package, and only by the modules that
need them (magics.py, dashboard.py), so `views`/`html` work without a kernel.

- summary.py   status word/colour and table row per object (pure functions)
- html.py      `_repr_html_` cards and tables
- views.py     ObjectView, ObjectList, EventList, ClusterViews (`cluster.pods.df`)
- magics.py    `%nbkube` / `%%nbkube` (`%nbkube use NAME`)
- current.py   which cluster the magics follow (the kernel's running clusters)
- dashboard.py Dashboard widget (nodes as columns, pods as chips, controls)
"""
