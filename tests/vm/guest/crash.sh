#!/bin/sh
# Harness self-test: a kernel crash must map to run-vm exit code 2 (VM DIED).
echo c > /proc/sysrq-trigger
sleep 60
