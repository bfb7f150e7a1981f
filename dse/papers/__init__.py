"""The papers' own methods, as the reproduction benchmarks and the mechanisms call them.

`park2015` (static lambda threshold, dynamic hill climbing) and `park2015_protocol` (§5.2 split protocol),
`tann2016` (increment search, Eqs. 1-4, runtime controller, storage) and `tann2016_trained` (real incremental
training against the golden-model estimate), `jahier2018` (minimum-bit-width characterization, precision cascade).
"""
