"""ClientApp, as in Flower's quickstart-pytorch."""

import time

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from plainfl.task import Net, load_data, test, train

app = ClientApp()


@app.train()
def train_fn(msg: Message, context: Context) -> Message:
    net = Net()
    net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y, _, _ = load_data(context.node_config["partition-id"], context.node_config["num-partitions"])
    cfg = context.run_config
    start = time.perf_counter()
    loss = train(net, x, y, cfg["local-epochs"], cfg["batch-size"], cfg["lr"])
    seconds = time.perf_counter() - start
    content = RecordDict({"arrays": ArrayRecord(net.state_dict()),
                          "metrics": MetricRecord({"train_loss": loss, "train_seconds": seconds,
                                                   "num-examples": len(y)})})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate_fn(msg: Message, context: Context) -> Message:
    net = Net()
    net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    _, _, x, y = load_data(context.node_config["partition-id"], context.node_config["num-partitions"])
    loss, accuracy = test(net, x, y)
    content = RecordDict({"metrics": MetricRecord({"eval_loss": loss, "eval_acc": accuracy,
                                                   "num-examples": len(y)})})
    return Message(content=content, reply_to=msg)
