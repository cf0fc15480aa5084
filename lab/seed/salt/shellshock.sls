# The talk's ShellShock check (CVE-2014-6271) as a state, on every kernel:Linux minion: it
# fails where bash runs code smuggled in a function definition. `stateful` makes the check
# report no changes when it passes, so the idempotence run stays clean.
{% if grains['kernel'] == 'Linux' %}
shellshock-check:
  cmd.run:
    - name: |
        out=$(env x='() { :;}; echo bad' bash -c 'echo good' 2>&1)
        case "$out" in
          *bad*) echo "changed=no comment='bash is vulnerable to ShellShock'"; exit 1 ;;
        esac
        echo "changed=no comment='bash is not vulnerable to ShellShock'"
    - stateful: True
{% endif %}
