# apache2 installed, its config managed from salt://, the service running and restarted
# when the config changes (watch), the config only once the package is there (require).
apache2:
  pkg.installed: []
  service.running:
    - enable: True
    - watch:
      - file: /etc/apache2/conf-available/lab.conf

/etc/apache2/conf-available/lab.conf:
  file.managed:
    - source: salt://apache/lab.conf
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - pkg: apache2

enable-lab-conf:
  cmd.run:
    - name: a2enconf -q lab
    - creates: /etc/apache2/conf-enabled/lab.conf
    - require:
      - file: /etc/apache2/conf-available/lab.conf
    - watch_in:
      - service: apache2
