"""Remote monitoring: device vitals over HTTP and MQTT, clinical rules, detectors, alerts."""
