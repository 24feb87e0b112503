"""Where events come from: files and the paced simulator (``files``), trace importers
(``alibaba``)."""
