"""How a device learns that the server refused its data, so that `fedge client` can stop and say why.

The server sends a refused node a query holding the record REFUSAL (the reason and the
run's classes); the ClientApp writes its explanation to the file named by the node-config
key REPORT_FILE, which `fedge client` watches.  Constants only: the CLI imports this
without loading torch or Flower.
"""

REFUSAL = "refusal"
REPORT_FILE = "report-file"
