# snmpd with the read-only community from the pillar; `public` when the pillar has none.
snmpd:
  pkg.installed: []
  service.running:
    - enable: True
    - watch:
      - file: snmpd.conf

snmpd.conf:
  file.managed:
    - name: /etc/snmp/snmpd.conf
    - source: salt://snmp/files/snmpd.conf
    - template: jinja
    - context:
        snmpcom: {{ pillar.get('snmpcom', 'public') }}
    - require:
      - pkg: snmpd
