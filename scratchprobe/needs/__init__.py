"""Runtime needs: the files a program opens at run time, each found from evidence in the file.

`detect.py` runs one detector module per concern (certs, zoneinfo, users, nameservice, tmp,
modules) over the evidence gathered by `evidence.py`. This package file stays empty so that
importing the data model (`model.py`) never loads the detectors.
"""
