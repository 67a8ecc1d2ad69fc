"""How changes come in: the ReShare poller, the ReShare and WMS webhooks, the WMS reconciler, the SQS record
adapter that feeds the step functions, the shared "put on the bus, then record as seen" of ReShare transitions
(``seen``), the outbox's delivery to the bus (WMS check-in notices), and the configuration checks made before
acting for a library. Nothing here decides what a step does: that is ``illbridge.workflow``."""
