# Idempotent work every minion does: a managed file from pillar, a command guarded by unless.
motd:
  file.managed:
    - name: /etc/motd
    - contents: "{{ pillar.get('site', 'lab') }} minion {{ grains['id'] }}"

marker:
  cmd.run:
    - name: touch /var/tmp/bench-marker
    - unless: test -e /var/tmp/bench-marker
